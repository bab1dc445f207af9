// LeakSanitizer's defaults for the tierflow binary, compiled into
// sanitizer builds only (TIERFLOW_SANITIZE).
//
// gRPC built with OpenSSL 3 (Debian's) now and then leaves an OpenSSL
// allocation behind when a process exits while one of gRPC's detached
// event-engine threads still runs: a one-frame leak from CRYPTO_zalloc
// (https://github.com/grpc/grpc/issues/38539), seen in `tierflow cancel`
// over TLS under load. It is not ours and cannot be freed from here, so
// leaks allocated inside libcrypto are suppressed; every other leak still
// fails the tests.

extern "C" const char* __lsan_default_suppressions() { return "leak:libcrypto.so\n"; }
