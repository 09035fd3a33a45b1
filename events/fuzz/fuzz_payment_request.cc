// libFuzzer target: decode_payment_request, as ffe reads it (see fuzz_decode.h).
#include "events/fuzz/fuzz_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return ffe::events::fuzz::decode_one<ffe::v1::PaymentRequest>(
      data, size, &ffe::events::decode_payment_request);
}
