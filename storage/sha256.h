#pragma once
// Internal to storage/: incremental SHA-256 (OpenSSL libcrypto) for the shard digest.
// Sha256 — owner: one digest computation; not thread-safe; not copyable.

#include <cstdint>
#include <string>
#include <string_view>

namespace ffe::storage {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::string_view bytes);
  // le64 length, then the bytes: the framing of every field the shard digest hashes.
  void update_framed(std::string_view bytes);
  // Lowercase hex of the 32-byte digest; the object is finished afterwards.
  std::string hex_digest();

 private:
  void* context_;  // EVP_MD_CTX*, kept opaque so OpenSSL's headers stay out of this one
};

}  // namespace ffe::storage
