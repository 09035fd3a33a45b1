// libFuzzer target: decode_shipment_reply, as ffe reads it (see fuzz_decode.h).
#include "events/fuzz/fuzz_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return ffe::events::fuzz::decode_one<ffe::v1::ShipmentReply>(data, size,
                                                               &ffe::events::decode_shipment_reply);
}
