#include "storage/sha256.h"

#include <openssl/evp.h>

#include "events/assert.h"
#include "storage/encoding.h"

namespace ffe::storage {

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  FFE_ASSERT(context_ != nullptr, "EVP_MD_CTX_new failed (out of memory)");
  FFE_ASSERT(EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(context_), EVP_sha256(), nullptr) == 1,
             "EVP_DigestInit_ex(sha256) failed");
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(context_)); }

void Sha256::update(std::string_view bytes) {
  FFE_ASSERT(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(context_), bytes.data(), bytes.size()) == 1,
             "EVP_DigestUpdate failed");
}

void Sha256::update_framed(std::string_view bytes) {
  std::string length;
  encoding::put_le64(length, bytes.size());
  update(length);
  update(bytes);
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  FFE_ASSERT(EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(context_), digest, &size) == 1 && size == 32,
             "EVP_DigestFinal_ex failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

}  // namespace ffe::storage
