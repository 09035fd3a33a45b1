#include "events/json_reader.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "events/limits.h"
#include "events/utf8.h"
#include "ffe/v1/inventory.pb.h"
#include "ffe/v1/orders.pb.h"
#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"

namespace ffe::events::json_reader {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// ---------------------------------------------------------------------------------------
// Tables: for each message type the reader knows, the keys it accepts and what each means.
// A field of a kind the reader does not read is simply left out: its key is then unknown
// here, and unknown means "not handled". So a field added to a contract later is either
// read (if its kind is one of these) or sends its messages down the full path.

enum class Kind : std::uint8_t { kString, kInt64, kEnum, kMessage, kRepeatedMessage };

struct Schema;

struct EnumName {
  std::string_view name;
  int number;
};

struct Member {
  std::string_view key;  // the field's JSON name or proto name (the descriptor's storage)
  const FieldDescriptor* field;
  Kind kind;
  int index;               // field->index(): the bit that says "given already"
  int oneof;               // index of its real oneof, or -1
  const Schema* schema;    // kMessage, kRepeatedMessage: the element's type
  std::vector<EnumName> enum_names;  // kEnum
};

// A field index or oneof index beyond this is not read (the masks below are 64 bits wide).
constexpr int kBitsMax = 64;

struct Schema {
  const Descriptor* type = nullptr;
  std::vector<Member> members;
};

// Which kind `field` is read as, or nullopt for a field the reader leaves to protobuf.
std::optional<Kind> kind_of(const FieldDescriptor& field) {
  if (field.index() >= kBitsMax || field.is_map()) return std::nullopt;
  if (field.containing_oneof() != nullptr && field.containing_oneof()->index() >= kBitsMax) {
    return std::nullopt;
  }
  if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    // The well-known types have JSON forms of their own.
    if (field.message_type()->file()->package() == "google.protobuf") return std::nullopt;
    return field.is_repeated() ? Kind::kRepeatedMessage : Kind::kMessage;
  }
  // Scalars: singular and without presence (proto3 plain fields), so that setting the
  // default value and leaving the field out are the same message.
  if (field.is_repeated() || field.has_presence()) return std::nullopt;
  switch (field.type()) {
    case FieldDescriptor::TYPE_STRING: return Kind::kString;
    case FieldDescriptor::TYPE_INT64: return Kind::kInt64;
    case FieldDescriptor::TYPE_ENUM: return Kind::kEnum;
    default: return std::nullopt;
  }
}

class Schemas {
 public:
  Schemas() {
    for (const Descriptor* root :
         {v1::OrderCommand::descriptor(), v1::InventoryCommand::descriptor(),
          v1::PaymentRequest::descriptor(), v1::PaymentReply::descriptor(),
          v1::ShipmentRequest::descriptor(), v1::ShipmentReply::descriptor()}) {
      add(*root);
    }
  }

  const Schema* find(const Descriptor* type) const {
    const auto it = by_type_.find(type);
    return it == by_type_.end() ? nullptr : it->second.get();
  }

 private:
  const Schema* add(const Descriptor& type) {
    if (const Schema* known = find(&type)) return known;
    auto& slot = by_type_[&type];
    slot = std::make_unique<Schema>();
    Schema& schema = *slot;  // stays put: the map holds pointers
    schema.type = &type;
    for (int i = 0; i < type.field_count(); ++i) {
      const FieldDescriptor& field = *type.field(i);
      const auto kind = kind_of(field);
      if (!kind) continue;
      Member member{{}, &field, *kind, field.index(), -1, nullptr, {}};
      if (const auto* oneof = field.real_containing_oneof()) member.oneof = oneof->index();
      if (*kind == Kind::kMessage || *kind == Kind::kRepeatedMessage) {
        member.schema = add(*field.message_type());
      }
      if (*kind == Kind::kEnum) {
        for (int v = 0; v < field.enum_type()->value_count(); ++v) {
          const auto* value = field.enum_type()->value(v);
          member.enum_names.push_back({value->name(), value->number()});
        }
      }
      member.key = field.json_name();
      schema.members.push_back(member);
      if (field.name() != field.json_name()) {
        member.key = field.name();
        schema.members.push_back(member);
      }
    }
    // A key two fields answer to (protoc refuses most such clashes) is left to protobuf.
    std::vector<Member> unambiguous;
    for (const Member& member : schema.members) {
      bool clash = false;
      for (const Member& other : schema.members) {
        clash = clash || (other.key == member.key && other.field != member.field);
      }
      if (!clash) unambiguous.push_back(member);
    }
    schema.members = std::move(unambiguous);
    return &schema;
  }

  std::unordered_map<const Descriptor*, std::unique_ptr<Schema>> by_type_;
};

const Schemas& schemas() {
  static const Schemas tables;
  return tables;
}

// ---------------------------------------------------------------------------------------
// The reader. Every read_* returns false for "not handled", leaving the cursor anywhere.

bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

class Reader {
 public:
  explicit Reader(std::string_view json)
      : at_(reinterpret_cast<const unsigned char*>(json.data())), end_(at_ + json.size()) {}

  bool read_document(const Schema& schema, Message& out) {
    skip_space();
    if (!read_object(schema, out, 0)) return false;
    skip_space();
    return at_ == end_;
  }

 private:
  unsigned char peek() const { return at_ < end_ ? *at_ : 0; }

  std::string_view rest() const {
    return {reinterpret_cast<const char*>(at_), static_cast<std::size_t>(end_ - at_)};
  }

  void skip_space() {
    while (at_ < end_ && (*at_ == ' ' || *at_ == '\n' || *at_ == '\r' || *at_ == '\t')) ++at_;
  }

  bool consume(unsigned char c) {
    skip_space();
    if (peek() != c) return false;
    ++at_;
    return true;
  }

  // Counts a level of nesting as JsonShapeCheck does (objects and arrays).
  static bool enter(int& depth) { return ++depth <= limits::json_depth_max; }

  // An object for `schema`'s type, into `out`.
  bool read_object(const Schema& schema, Message& out, int depth) {
    if (!enter(depth) || !consume('{')) return false;
    if (consume('}')) return true;
    std::uint64_t given = 0;   // fields given in this object
    std::uint64_t oneofs = 0;  // oneofs one of whose members was given
    do {
      skip_space();
      const Member* member = read_key(schema);
      if (member == nullptr) return false;
      const std::uint64_t field_bit = std::uint64_t{1} << member->index;
      if ((given & field_bit) != 0) return false;
      given |= field_bit;
      if (member->oneof >= 0) {
        const std::uint64_t oneof_bit = std::uint64_t{1} << member->oneof;
        if ((oneofs & oneof_bit) != 0) return false;
        oneofs |= oneof_bit;
      }
      if (!consume(':')) return false;
      skip_space();
      if (!read_value(*member, out, depth)) return false;
    } while (consume(','));
    return consume('}');
  }

  // A string in quotes of printable ASCII without escapes (a key, an enum name), as a view of
  // the input.
  bool read_plain_string(std::string_view& text) {
    if (peek() != '"') return false;
    const unsigned char* start = ++at_;
    while (at_ < end_ && *at_ != '"') {
      if (*at_ == '\\' || *at_ < 0x20 || *at_ >= 0x80) return false;
      ++at_;
    }
    if (at_ == end_) return false;
    text = std::string_view(reinterpret_cast<const char*>(start), at_ - start);
    ++at_;
    return true;
  }

  // A key in quotes, as one of `schema`'s members; null if it is not one (or has escapes).
  const Member* read_key(const Schema& schema) {
    std::string_view key;
    if (!read_plain_string(key)) return nullptr;
    for (const Member& member : schema.members) {
      if (member.key == key) return &member;
    }
    return nullptr;
  }

  bool read_value(const Member& member, Message& out, int depth) {
    const auto* reflection = out.GetReflection();
    switch (member.kind) {
      case Kind::kString: {
        std::string value;
        if (!read_string(value)) return false;
        reflection->SetString(&out, member.field, std::move(value));
        return true;
      }
      case Kind::kInt64: {
        std::int64_t value = 0;
        if (peek() == '"') {
          ++at_;
          if (!read_int64(value) || peek() != '"') return false;
          ++at_;
        } else if (!read_int64(value)) {
          return false;
        }
        reflection->SetInt64(&out, member.field, value);
        return true;
      }
      case Kind::kEnum: {
        int number = 0;
        if (!read_enum(member, number)) return false;
        reflection->SetEnumValue(&out, member.field, number);
        return true;
      }
      case Kind::kMessage:
        if (peek() != '{') return false;
        return read_object(*member.schema, *reflection->MutableMessage(&out, member.field),
                           depth);
      case Kind::kRepeatedMessage: {
        if (!enter(depth) || !consume('[')) return false;
        if (consume(']')) return true;
        do {
          skip_space();
          if (peek() != '{') return false;
          if (!read_object(*member.schema, *reflection->AddMessage(&out, member.field), depth)) {
            return false;
          }
        } while (consume(','));
        return consume(']');
      }
    }
    return false;
  }

  // -?(0|[1-9][0-9]{0,17}) but not -0: in range of int64 whatever the digits.
  bool read_int64(std::int64_t& value) {
    constexpr int digits_max = 18;
    const bool negative = peek() == '-';
    if (negative) ++at_;
    if (peek() == '0') {
      ++at_;
      value = 0;
      return !negative && !is_digit(peek());
    }
    if (!is_digit(peek())) return false;
    std::int64_t magnitude = 0;
    for (int digits = 0; is_digit(peek()); ++digits, ++at_) {
      if (digits == digits_max) return false;
      magnitude = magnitude * 10 + (*at_ - '0');
    }
    value = negative ? -magnitude : magnitude;
    return true;
  }

  // A value's exact name in quotes, or a declared value's number (bare, no leading zero).
  bool read_enum(const Member& member, int& number) {
    if (peek() == '"') {
      std::string_view name;
      if (!read_plain_string(name)) return false;
      for (const EnumName& known : member.enum_names) {
        if (known.name == name) {
          number = known.number;
          return true;
        }
      }
      return false;
    }
    constexpr int digits_max = 9;  // within int32
    if (!is_digit(peek())) return false;
    if (peek() == '0') {
      ++at_;
      number = 0;
      if (is_digit(peek())) return false;
    } else {
      number = 0;
      for (int digits = 0; is_digit(peek()); ++digits, ++at_) {
        if (digits == digits_max) return false;
        number = number * 10 + (*at_ - '0');
      }
    }
    for (const EnumName& known : member.enum_names) {
      if (known.number == number) return true;
    }
    return false;
  }

  // Four hex digits, as a UTF-16 code unit.
  bool read_hex4(char32_t& unit) {
    if (!utf8::hex4(rest(), unit)) return false;
    at_ += 4;
    return true;
  }

  bool read_string(std::string& out) {
    if (peek() != '"') return false;
    ++at_;
    const unsigned char* run = at_;  // start of the bytes not yet copied to `out`
    const auto flush = [&] { out.append(reinterpret_cast<const char*>(run), at_ - run); };
    while (at_ < end_) {
      const unsigned char c = *at_;
      if (c == '"') {
        flush();
        ++at_;
        return true;
      }
      if (c < 0x20) return false;
      if (c < 0x80 && c != '\\') {
        ++at_;
        continue;
      }
      if (c >= 0x80) {
        const std::size_t length = utf8::char_length(rest(), 0);
        if (length == 0) return false;
        at_ += length;
        continue;
      }
      flush();
      if (end_ - at_ < 2) return false;
      const unsigned char escape = at_[1];
      at_ += 2;
      switch (escape) {
        case '"':
        case '\\':
        case '/': out += static_cast<char>(escape); break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          char32_t unit = 0;
          if (!read_hex4(unit)) return false;
          if (unit >= 0xdc00 && unit <= 0xdfff) return false;  // a lone low surrogate
          if (unit >= 0xd800 && unit <= 0xdbff) {
            char32_t low = 0;
            if (end_ - at_ < 2 || at_[0] != '\\' || at_[1] != 'u') return false;
            at_ += 2;
            if (!read_hex4(low) || low < 0xdc00 || low > 0xdfff) return false;
            unit = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
          }
          utf8::append(out, unit);
          break;
        }
        default: return false;
      }
      run = at_;
    }
    return false;
  }

  const unsigned char* at_;
  const unsigned char* const end_;
};

}  // namespace

bool read(std::string_view json, google::protobuf::Message& out) {
  const Schema* schema = schemas().find(out.GetDescriptor());
  if (schema == nullptr) return false;
  if (Reader(json).read_document(*schema, out)) return true;
  out.Clear();
  return false;
}

}  // namespace ffe::events::json_reader
