#include "storage_adapters/sigv4.h"

#include <gtest/gtest.h>

namespace tierflow::storage {
namespace {

// The examples of "Signature Calculations for the Authorization Header:
// Transferring Payload in a Single Chunk (AWS Signature Version 4)" in the
// Amazon S3 API reference: bucket examplebucket, 2013-05-24 00:00:00 UTC,
// with these example credentials.
const SigV4Credentials kAwsExample{"AKIAIOSFODNN7EXAMPLE",
                                   "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", "s3"};
constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::chrono::system_clock::time_point May24Of2013() {
  return std::chrono::system_clock::time_point(std::chrono::seconds(1369353600));
}

TEST(SigV4Test, SignsTheAwsGetObjectExample) {
  SigV4Request request{"GET",
                       "/test.txt",
                       {},
                       {{"Host", "examplebucket.s3.amazonaws.com"},
                        {"Range", "bytes=0-9"},
                        {"x-amz-content-sha256", std::string(kEmptySha256)}},
                       std::string(kEmptySha256)};
  SigV4Signature signature = SignV4(request, kAwsExample, May24Of2013());
  EXPECT_EQ(signature.amz_date, "20130524T000000Z");
  EXPECT_EQ(signature.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4Test, SignsTheAwsPutObjectExampleWithAnEncodedKey) {
  const std::string payload = "Welcome to Amazon S3.";
  const std::string payload_sha256 = Sha256Hex(payload);
  EXPECT_EQ(payload_sha256, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  SigV4Request request{"PUT",
                       "/test$file.text",
                       {},
                       {{"Host", "examplebucket.s3.amazonaws.com"},
                        {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                        {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                        {"x-amz-content-sha256", payload_sha256}},
                       payload_sha256};
  EXPECT_EQ(SignV4(request, kAwsExample, May24Of2013()).authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
            "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4Test, SignsTheAwsGetBucketLifecycleExampleWithAValuelessParameter) {
  SigV4Request request{"GET",
                       "/",
                       {{"lifecycle", ""}},
                       {{"Host", "examplebucket.s3.amazonaws.com"},
                        {"x-amz-content-sha256", std::string(kEmptySha256)}},
                       std::string(kEmptySha256)};
  EXPECT_EQ(SignV4(request, kAwsExample, May24Of2013()).authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
            "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4Test, SignsTheAwsListObjectsExampleWithSortedParameters) {
  SigV4Request request{"GET",
                       "/",
                       {{"prefix", "J"}, {"max-keys", "2"}},  // signed sorted: max-keys first
                       {{"Host", "examplebucket.s3.amazonaws.com"},
                        {"x-amz-content-sha256", std::string(kEmptySha256)}},
                       std::string(kEmptySha256)};
  EXPECT_EQ(SignV4(request, kAwsExample, May24Of2013()).authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4Test, HeaderOrderCaseAndSpacingDoNotChangeTheSignature) {
  SigV4Request plain{"GET",
                     "/test.txt",
                     {},
                     {{"host", "examplebucket.s3.amazonaws.com"},
                      {"range", "bytes=0-9"},
                      {"x-amz-content-sha256", std::string(kEmptySha256)}},
                     std::string(kEmptySha256)};
  SigV4Request shuffled = plain;
  shuffled.headers = {{"X-Amz-Content-SHA256", std::string(kEmptySha256)},
                      {" RANGE ", "  bytes=0-9 "},
                      {"Host", "examplebucket.s3.amazonaws.com"},
                      {"x-amz-date", "19990101T000000Z"}};  // replaced by the signer's
  EXPECT_EQ(SignV4(plain, kAwsExample, May24Of2013()).authorization,
            SignV4(shuffled, kAwsExample, May24Of2013()).authorization);
}

TEST(SigV4Test, UriEncodesEveryByteButTheUnreservedOnes) {
  EXPECT_EQ(UriEncode("AZaz09-._~", false), "AZaz09-._~");
  EXPECT_EQ(UriEncode("a b+c=d&e/f", false), "a%20b%2Bc%3Dd%26e%2Ff");
  EXPECT_EQ(UriEncodePath("/bucket/run/a b/$x"), "/bucket/run/a%20b/%24x");
  EXPECT_EQ(UriEncode("\xc3\xa9", false), "%C3%A9");  // é in UTF-8
  EXPECT_EQ(CanonicalQuery({{"uploadId", "a/b c"}, {"partNumber", "10"}, {"list-type", "2"}}),
            "list-type=2&partNumber=10&uploadId=a%2Fb%20c");
  EXPECT_EQ(CanonicalQuery({{"uploads", ""}}), "uploads=");
}

TEST(SigV4Test, DigestsAndEncodings) {
  EXPECT_EQ(Sha256Hex(""), kEmptySha256);
  Digest md5(Digest::Kind::kMd5);
  md5.Update("");
  EXPECT_EQ(HexEncode(md5.Finish()), "d41d8cd98f00b204e9800998ecf8427e");
  Digest pieces(Digest::Kind::kSha256);
  pieces.Update("Welcome to ");
  pieces.Update("Amazon S3.");
  EXPECT_EQ(HexEncode(pieces.Finish()), Sha256Hex("Welcome to Amazon S3."));
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("hello"), "aGVsbG8=");
  // RFC 4231 test case 2.
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

}  // namespace
}  // namespace tierflow::storage
