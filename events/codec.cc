#include "events/codec.h"

#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/json_util.h>

#include <atomic>
#include <cstdint>
#include <exception>
#include <string>
#include <unordered_set>
#include <vector>

#include "events/assert.h"
#include "events/codec_internal.h"
#include "events/json_reader.h"
#include "events/limits.h"
#include "events/utf8.h"
#include "events/validate.h"

namespace ffe::events {
namespace {

// A DecodeError's reason travels in the ff-error DLQ header (codec.h): one printable line
// of at most this many bytes. An output bound rather than an input limit, so not in limits.h.
constexpr std::size_t reason_bytes_max = 512;
// How much of an offending value (a content-type header, an enum name) a reason quotes.
constexpr std::size_t quoted_value_bytes_max = 64;

// ---------------------------------------------------------------------------------------
// Protobuf's log lines.
//
// Protobuf reports some bad input by logging rather than by a return value: parsing a
// binary string field that is not UTF-8 logs an ERROR line before the parse fails. With
// the default handler that is one stderr line per bad message, which a broken or hostile
// producer can turn into a flood. Silencing protobuf for the whole process (a handler that
// drops everything below FATAL) would also hide the lines that reveal our own bugs, so the
// handler installed here is narrower: a line logged on a thread while this codec runs a
// parse on it is captured, and becomes the detail of that parse's DecodeError; every other
// line, and FATAL always, goes on to the handler that was installed before (protobuf's
// default writes to stderr). A component that later installs its own handler should chain
// to the one it replaces (SetLogHandler returns it), or bad input will reach its logs.

thread_local std::string* parse_log = nullptr;  // set while this thread runs a parse
google::protobuf::LogHandler* previous_log_handler = nullptr;

void route_protobuf_log(google::protobuf::LogLevel level, const char* filename, int line,
                        const std::string& message) {
  if (parse_log != nullptr && level != google::protobuf::LOGLEVEL_FATAL) {
    if (parse_log->empty()) *parse_log = message;
    return;
  }
  if (previous_log_handler != nullptr) previous_log_handler(level, filename, line, message);
}

void install_log_handler_once() {
  static const bool installed = [] {
    previous_log_handler = google::protobuf::SetLogHandler(&route_protobuf_log);
    return true;
  }();
  (void)installed;
}

// SetLogHandler is not thread-safe, so the handler goes in at startup, while the process is
// still one thread. The call in CaptureParseLog covers a decode made by another static
// initializer before this one ran.
[[maybe_unused]] const bool log_handler_installed_at_startup = (install_log_handler_once(), true);

// While alive, protobuf's log lines on this thread land in `captured`.
class CaptureParseLog {
 public:
  explicit CaptureParseLog(std::string& captured) : outer_(parse_log) {
    install_log_handler_once();
    parse_log = &captured;
  }
  ~CaptureParseLog() { parse_log = outer_; }
  CaptureParseLog(const CaptureParseLog&) = delete;
  CaptureParseLog& operator=(const CaptureParseLog&) = delete;

 private:
  std::string* outer_;
};

// ---------------------------------------------------------------------------------------
// Reasons.

// Appends `text` to `out` with every byte outside printable ASCII escaped (newlines become
// "\n", other bytes "\xNN"), stopping with "..." before `out` would pass `bytes_max`.
// Returns false if it had to stop.
bool append_printable(std::string& out, std::string_view text, std::size_t bytes_max) {
  static constexpr char hex[] = "0123456789abcdef";
  static constexpr std::string_view ellipsis = "...";
  for (unsigned char c : text) {
    std::string piece;
    if (c == '\n') {
      piece = "\\n";
    } else if (c == '\r') {
      piece = "\\r";
    } else if (c == '\t') {
      piece = "\\t";
    } else if (c >= 0x20 && c < 0x7f) {
      piece = static_cast<char>(c);
    } else {
      piece = {'\\', 'x', hex[c >> 4], hex[c & 0xf]};
    }
    if (out.size() + piece.size() + ellipsis.size() > bytes_max) {
      out += ellipsis;
      return false;
    }
    out += piece;
  }
  return true;
}

DecodeError error(std::string_view what, std::string_view detail = {}) {
  DecodeError result;
  if (append_printable(result.reason, what, reason_bytes_max) && !detail.empty()) {
    result.reason += ": ";
    append_printable(result.reason, detail, reason_bytes_max);
  }
  return result;
}

std::string quoted(std::string_view text, std::size_t bytes_max) {
  std::string out = "\"";
  append_printable(out, text, bytes_max + 1);
  out += '"';
  return out;
}

// ---------------------------------------------------------------------------------------
// Checks before a parser sees the bytes.

// The JSON a decode accepts, checked before protobuf's parser runs.
//
// Protobuf 3.21's JSON parser is lenient beyond the canonical mapping: it accepts an object
// where a repeated field wants an array ({"lines": {...}} becomes one line), single-quoted
// strings, bare keys, trailing commas, and a repeated key (the last one wins, so two readers
// of the same bytes could disagree about an orderId). It also names fields in reasons by
// their proto spelling. So every JSON input first passes this check, which walks it against
// the message's descriptor and refuses, with the field path in the contract's spelling:
//   - anything that is not RFC 8259 JSON, or whose top level is not one object;
//   - nesting deeper than limits::json_depth_max (before any recursion could go deeper:
//     this walk recurses once per level, so its stack is bounded by the limit too);
//   - a key given twice in one object (also as its proto spelling), or two members of a oneof;
//   - a value of the wrong kind: an array for a repeated field, an object for a message, a
//     string for a string, true/false for a bool, a number or string for a number;
//   - an enum value by a name the contract does not have.
// null is accepted anywhere (proto3: the default). Unknown keys are skipped, their values
// checked for syntax only. Value ranges (an int64 in range, "abc" for a number) are
// protobuf's to check; its reason is then used.
class JsonShapeCheck {
 public:
  explicit JsonShapeCheck(std::string_view json) : json_(json) {}

  // nullopt if `json_` may be given to protobuf's parser for a message of type `type`.
  std::optional<std::string> check(const google::protobuf::Descriptor& type) {
    skip_space();
    if (at_ == json_.size()) return "no value";
    if (peek() != '{') {
      fail("the top level must be an object");
    } else if (read_message(type, 0)) {
      skip_space();
      if (at_ == json_.size()) return std::nullopt;
      fail("unexpected data after the object");
    }
    return failure_;
  }

 private:
  using Field = google::protobuf::FieldDescriptor;

  char peek() const { return at_ < json_.size() ? json_[at_] : '\0'; }

  void skip_space() {
    while (at_ < json_.size() &&
           (json_[at_] == ' ' || json_[at_] == '\t' || json_[at_] == '\n' || json_[at_] == '\r')) {
      ++at_;
    }
  }

  // Records the first failure, with where it happened, and returns false for the caller.
  bool fail(std::string_view what) {
    if (failure_.empty()) {
      failure_ = path_.empty() ? std::string(what) : path_ + ": " + std::string(what);
      failure_ += " (at byte " + std::to_string(at_) + ")";
    }
    return false;
  }

  bool expect(char c, std::string_view what) {
    skip_space();
    if (peek() != c) return fail(what);
    ++at_;
    return true;
  }

  bool enter(int& depth) {
    if (++depth > limits::json_depth_max) {
      return fail("nested deeper than " + std::to_string(limits::json_depth_max) + " levels");
    }
    return true;
  }

  // What the value at at_ is, or "" if nothing valid starts there.
  std::string_view kind_here() const {
    const char c = peek();
    if (c == '{') return "an object";
    if (c == '[') return "an array";
    if (c == '"') return "a string";
    if (json_.substr(at_, 4) == "true" || json_.substr(at_, 5) == "false") return "a boolean";
    if (c == '-' || (c >= '0' && c <= '9')) return "a number";
    return "";
  }

  bool wrong_kind(std::string_view expected) {
    const std::string_view got = kind_here();
    if (got.empty()) return fail("expected a value");
    return fail("expected " + std::string(expected) + ", got " + std::string(got));
  }

  // Notes that the object being read has `key` (its canonical spelling), refusing it the
  // second time. A hash set: an object may have thousands of keys within 64 KiB.
  bool note_key(std::unordered_set<std::string>& keys, std::string_view key, std::size_t key_at) {
    if (keys.emplace(key).second) return true;
    at_ = key_at;
    return fail("given twice");
  }

  // Extends the path with an object's key; keys of unknown fields are cut, so that a long
  // key cannot crowd the rule out of a reason.
  void push_key(std::string_view key) {
    if (!path_.empty()) path_ += '.';
    if (key.size() <= quoted_value_bytes_max) {
      path_ += key;
    } else {
      path_ += key.substr(0, quoted_value_bytes_max);
      path_ += "...";
    }
  }

  // An object for a message of type `type`.
  bool read_message(const google::protobuf::Descriptor& type, int depth) {
    if (!enter(depth) || !expect('{', "expected an object")) return false;
    std::unordered_set<std::string> keys;
    std::vector<const Field*> oneof_members;  // set (non-null) so far, one per oneof at most
    skip_space();
    if (peek() == '}') {
      ++at_;
      return true;
    }
    while (true) {
      std::string key;
      skip_space();
      const std::size_t key_at = at_;
      if (peek() != '"') return fail("expected a key in double quotes");
      if (!read_string(&key) || !expect(':', "expected ':' after a key")) return false;
      const Field* field = find_field(type, key);
      const std::size_t path_size = path_.size();
      push_key(field != nullptr ? field->json_name() : key);
      if (!note_key(keys, field != nullptr ? field->json_name() : key, key_at)) return false;
      skip_space();
      // A null member of a oneof sets nothing, so it does not exclude another member.
      const auto* oneof = field != nullptr ? field->real_containing_oneof() : nullptr;
      if (oneof != nullptr && json_.substr(at_, 4) != "null") {
        for (const Field* member : oneof_members) {
          if (member->real_containing_oneof() == oneof) {
            at_ = key_at;
            return fail("cannot be set together with " + member->json_name());
          }
        }
        oneof_members.push_back(field);
      }
      if (!(field == nullptr ? skip_value(depth) : read_field(*field, depth))) return false;
      path_.resize(path_size);
      skip_space();
      if (peek() == ',') {
        ++at_;
        continue;
      }
      return expect('}', "expected ',' or '}'");
    }
  }

  // Protobuf's parser finds a field by its JSON name or its proto name.
  static const Field* find_field(const google::protobuf::Descriptor& type, std::string_view key) {
    for (int i = 0; i < type.field_count(); ++i) {
      const Field* field = type.field(i);
      if (field->json_name() == key || field->name() == key) return field;
    }
    return nullptr;
  }

  bool read_field(const Field& field, int depth) {
    skip_space();
    if (json_.substr(at_, 4) == "null") return skip_value(depth);
    if (field.is_map()) {
      if (peek() != '{') return wrong_kind("an object");
      return read_map(*field.message_type()->map_value(), depth);
    }
    if (field.is_repeated()) {
      if (peek() != '[') return wrong_kind("an array");
      if (!enter(depth)) return false;
      ++at_;
      skip_space();
      if (peek() == ']') {
        ++at_;
        return true;
      }
      const std::size_t path_size = path_.size();
      for (int index = 0;; ++index) {
        path_ += "[" + std::to_string(index) + "]";
        if (!read_one(field, depth)) return false;
        path_.resize(path_size);
        skip_space();
        if (peek() == ',') {
          ++at_;
          continue;
        }
        return expect(']', "expected ',' or ']'");
      }
    }
    return read_one(field, depth);
  }

  bool read_map(const Field& value_field, int depth) {
    if (!enter(depth) || !expect('{', "expected an object")) return false;
    std::unordered_set<std::string> keys;
    skip_space();
    if (peek() == '}') {
      ++at_;
      return true;
    }
    while (true) {
      std::string key;
      skip_space();
      const std::size_t key_at = at_;
      if (peek() != '"') return fail("expected a key in double quotes");
      if (!read_string(&key) || !expect(':', "expected ':' after a key")) return false;
      const std::size_t path_size = path_.size();
      push_key(key);
      if (!note_key(keys, key, key_at) || !read_one(value_field, depth)) return false;
      path_.resize(path_size);
      skip_space();
      if (peek() == ',') {
        ++at_;
        continue;
      }
      return expect('}', "expected ',' or '}'");
    }
  }

  // One value (not a repeated field's array) of `field`'s type.
  bool read_one(const Field& field, int depth) {
    skip_space();
    const char first = peek();
    if (json_.substr(at_, 4) == "null") return skip_value(depth);
    switch (field.cpp_type()) {
      case Field::CPPTYPE_MESSAGE:
        // The well-known types have JSON forms of their own; none is in the contracts yet,
        // and protobuf checks them.
        if (field.message_type()->file()->package() == "google.protobuf") return skip_value(depth);
        if (first != '{') return wrong_kind("an object");
        return read_message(*field.message_type(), depth);
      case Field::CPPTYPE_STRING:
        if (first != '"') return wrong_kind("a string");
        return read_string(nullptr);
      case Field::CPPTYPE_BOOL:
        if (first != 't' && first != 'f') return wrong_kind("true or false");
        return skip_value(depth);
      case Field::CPPTYPE_ENUM: {
        if (first != '"') {
          if (first != '-' && (first < '0' || first > '9')) return wrong_kind("a name or a number");
          return skip_value(depth);
        }
        const std::size_t value_at = at_;
        std::string name;
        if (!read_string(&name)) return false;
        // A quoted number is a number to protobuf's parser, as a bare one is (which value it
        // names, and whether any, protobuf checks).
        const bool quoted_number =
            !name.empty() && name.find_first_not_of("0123456789", name[0] == '-' ? 1 : 0) == std::string::npos &&
            name != "-";
        if (!quoted_number && field.enum_type()->FindValueByName(name) == nullptr) {
          at_ = value_at;
          std::string names;
          for (int i = 0; i < field.enum_type()->value_count(); ++i) {
            if (field.enum_type()->value(i)->number() == 0) continue;  // the "not set" value
            names += (names.empty() ? "" : ", ") + field.enum_type()->value(i)->name();
          }
          return fail("unknown value " + quoted(name, quoted_value_bytes_max) +
                      ", expected one of " + names);
        }
        return true;
      }
      default:  // numbers: protobuf also takes them as strings ("4812"), and checks the range
        if (first != '"' && first != '-' && (first < '0' || first > '9')) {
          return wrong_kind("a number");
        }
        return skip_value(depth);
    }
  }

  // Any JSON value, checked for syntax and depth only.
  bool skip_value(int depth) {
    skip_space();
    switch (peek()) {
      case '{': {
        if (!enter(depth)) return false;
        ++at_;
        skip_space();
        if (peek() == '}') {
          ++at_;
          return true;
        }
        std::unordered_set<std::string> keys;  // a repeated key is refused here too
        while (true) {
          skip_space();
          if (peek() != '"') return fail("expected a key in double quotes");
          const std::size_t key_at = at_;
          std::string key;
          if (!read_string(&key)) return false;
          const std::size_t path_size = path_.size();
          push_key(key);
          if (!note_key(keys, key, key_at)) return false;
          if (!expect(':', "expected ':' after a key") || !skip_value(depth)) return false;
          path_.resize(path_size);
          skip_space();
          if (peek() == ',') {
            ++at_;
            continue;
          }
          return expect('}', "expected ',' or '}'");
        }
      }
      case '[': {
        if (!enter(depth)) return false;
        ++at_;
        skip_space();
        if (peek() == ']') {
          ++at_;
          return true;
        }
        const std::size_t path_size = path_.size();
        for (int index = 0;; ++index) {
          path_ += "[" + std::to_string(index) + "]";
          if (!skip_value(depth)) return false;
          path_.resize(path_size);
          skip_space();
          if (peek() == ',') {
            ++at_;
            continue;
          }
          return expect(']', "expected ',' or ']'");
        }
      }
      case '"': return read_string(nullptr);
      case 't': return read_literal("true");
      case 'f': return read_literal("false");
      case 'n': return read_literal("null");
      default: return read_number();
    }
  }

  bool read_literal(std::string_view word) {
    if (json_.substr(at_, word.size()) != word) return fail("expected a value");
    at_ += word.size();
    return true;
  }

  bool digits() {
    const std::size_t start = at_;
    while (peek() >= '0' && peek() <= '9') ++at_;
    return at_ > start;
  }

  // RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool read_number() {
    if (peek() == '-') ++at_;
    if (peek() == '0') {
      ++at_;
    } else if (peek() < '1' || peek() > '9') {
      return fail("expected a value");
    } else {
      digits();
    }
    if (peek() == '.') {
      ++at_;
      if (!digits()) return fail("expected a digit after '.'");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++at_;
      if (peek() == '+' || peek() == '-') ++at_;
      if (!digits()) return fail("expected a digit in the exponent");
    }
    return true;
  }

  // Reads 4 hex digits into `unit`; false (with no failure recorded) if they are not there.
  bool hex4(char32_t& unit) {
    if (at_ > json_.size() || !utf8::hex4(json_.substr(at_), unit)) return false;
    at_ += 4;
    return true;
  }

  // A double-quoted string; its decoded value goes to `out` unless that is null. The input
  // is valid UTF-8 already, so only escapes and raw control characters need a look.
  bool read_string(std::string* out) {
    ++at_;  // the opening quote
    while (true) {
      if (at_ >= json_.size()) return fail("unterminated string");
      const char c = json_[at_];
      if (c == '"') {
        ++at_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) {
        return fail("control character in a string (escape it)");
      }
      if (c != '\\') {
        if (out != nullptr) *out += c;
        ++at_;
        continue;
      }
      const std::size_t escape_at = at_;
      const auto fail_at_escape = [&](std::string_view what) {
        at_ = escape_at;
        return fail(what);
      };
      ++at_;
      const char escape = peek();
      ++at_;
      switch (escape) {
        case '"':
        case '\\':
        case '/':
          if (out != nullptr) *out += escape;
          break;
        case 'b':
          if (out != nullptr) *out += '\b';
          break;
        case 'f':
          if (out != nullptr) *out += '\f';
          break;
        case 'n':
          if (out != nullptr) *out += '\n';
          break;
        case 'r':
          if (out != nullptr) *out += '\r';
          break;
        case 't':
          if (out != nullptr) *out += '\t';
          break;
        case 'u': {
          char32_t unit = 0;
          if (!hex4(unit)) return fail_at_escape("expected 4 hex digits after \\u");
          if (unit >= 0xdc00 && unit <= 0xdfff) {
            return fail_at_escape("\\u escape of a lone low surrogate");
          }
          if (unit >= 0xd800 && unit <= 0xdbff) {
            char32_t low = 0;
            if (json_.substr(at_, 2) != "\\u") {
              return fail_at_escape("\\u escape of a lone high surrogate");
            }
            at_ += 2;
            if (!hex4(low)) return fail_at_escape("expected 4 hex digits after \\u");
            if (low < 0xdc00 || low > 0xdfff) {
              return fail_at_escape("\\u escape of a lone high surrogate");
            }
            unit = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
          }
          if (out != nullptr) utf8::append(*out, unit);
          break;
        }
        default: return fail_at_escape("invalid escape in a string");
      }
    }
  }

  std::string_view json_;
  std::size_t at_ = 0;
  std::string path_;     // of the value being read, in the contract's spelling
  std::string failure_;  // the first failure, once there is one
};

// The fast path (json_reader.h), on unless a test or a benchmark turned it off.
std::atomic<bool> json_fast_path_enabled{true};
thread_local std::uint64_t json_fast_path_hits = 0;

std::optional<DecodeError> decode_json(std::string_view bytes, google::protobuf::Message& out) {
  // The fast path reads only what it knows the checks and the parser below read to the
  // same message without an error; anything else it leaves to them (with `out` cleared).
  if (json_fast_path_enabled.load(std::memory_order_relaxed) && json_reader::read(bytes, out)) {
    ++json_fast_path_hits;
    return std::nullopt;
  }
  if (const std::size_t bad = utf8::first_invalid(bytes); bad != bytes.size()) {
    return error("invalid JSON", "not valid UTF-8 (at byte " + std::to_string(bad) + ")");
  }
  if (auto misfit = JsonShapeCheck(bytes).check(*out.GetDescriptor())) {
    return error("invalid JSON", *misfit);
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // a newer producer may add optional fields
  std::string log;
  google::protobuf::util::Status status;
  {
    CaptureParseLog capture(log);
    status = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(bytes.data(), bytes.size()), &out, options);
  }
  if (!status.ok()) {
    out.Clear();
    // Protobuf's reason may go on with a quote of the input and a caret under the fault;
    // the first line says what failed.
    const auto message = status.message();
    const std::string_view reason(message.data(), message.size());
    return error("invalid JSON", reason.substr(0, reason.find('\n')));
  }
  return std::nullopt;
}

std::optional<DecodeError> decode_binary(std::string_view bytes, google::protobuf::Message& out) {
  std::string log;
  bool parsed = false;
  {
    CaptureParseLog capture(log);
    // The size is at most message_bytes_max, so the int conversion is exact.
    parsed = out.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  }
  if (!parsed) {
    out.Clear();
    return error("invalid protobuf", "cannot parse as " + out.GetTypeName() +
                                         (log.empty() ? std::string() : ": " + log));
  }
  // Fields this build does not know are dropped, as the JSON parser ignores them: kept, they
  // would be journaled and passed on to participants (a shipTo's unknown bytes in a
  // CreateShipment), and could push a request past what a participant accepts.
  out.DiscardUnknownFields();
  return std::nullopt;
}


std::string_view trim(std::string_view text) {
  constexpr std::string_view blanks = " \t";
  const std::size_t first = text.find_first_not_of(blanks);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(blanks) - first + 1);
}

// Decodes and then turns a rule violation into a DecodeError: the input topics' and the
// participants' answer to a message they cannot act on.
template <class T>
Decoded<T> decode_and_validate(std::string_view bytes,
                               std::optional<std::string_view> content_type) {
  T message;
  if (auto failure = decode(bytes, content_type, message)) return std::move(*failure);
  if (auto invalid = validate(message)) return error(invalid->to_string());
  return message;
}

}  // namespace

void internal::set_json_fast_path(bool enabled) { json_fast_path_enabled.store(enabled); }

std::uint64_t internal::json_fast_path_decodes() { return json_fast_path_hits; }

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) {
      return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::variant<ContentType, DecodeError> parse_content_type(std::optional<std::string_view> header) {
  if (!header) return ContentType::kJson;
  const std::string_view media_type = trim(header->substr(0, header->find(';')));
  if (media_type.empty() || equals_ignoring_case(media_type, kJsonContentType)) {
    return ContentType::kJson;
  }
  for (std::string_view protobuf : {kProtobufContentType, std::string_view("application/protobuf"),
                                    std::string_view("application/vnd.google.protobuf")}) {
    if (equals_ignoring_case(media_type, protobuf)) return ContentType::kProtobuf;
  }
  return error("unsupported content-type " + quoted(*header, quoted_value_bytes_max),
               "expected application/json or application/x-protobuf");
}

std::string_view content_type_name(ContentType type) {
  switch (type) {
    case ContentType::kJson: return kJsonContentType;
    case ContentType::kProtobuf: return kProtobufContentType;
  }
  FFE_ASSERT(false, "content_type_name: a ContentType outside the enum");
}

std::optional<DecodeError> decode(std::string_view bytes, ContentType type,
                                  google::protobuf::Message& out) {
  out.Clear();
  if (bytes.size() > limits::message_bytes_max) {
    return error("message is " + std::to_string(bytes.size()) + " bytes, limit " +
                 std::to_string(limits::message_bytes_max));
  }
  const std::string_view what = type == ContentType::kJson ? "invalid JSON" : "invalid protobuf";
  if (bytes.empty()) return error(what, "empty message");
  // Neither parser is documented to throw on bad input; this is the boundary that keeps
  // anything they might throw (std::bad_alloc, a future version) from escaping the codec.
  try {
    return type == ContentType::kJson ? decode_json(bytes, out) : decode_binary(bytes, out);
  } catch (const std::exception& e) {
    out.Clear();
    return error(what, std::string("parser failed: ") + e.what());
  } catch (...) {
    out.Clear();
    return error(what, "parser failed");
  }
}

std::optional<DecodeError> decode(std::string_view bytes,
                                  std::optional<std::string_view> content_type,
                                  google::protobuf::Message& out) {
  auto type = parse_content_type(content_type);
  if (auto* failure = std::get_if<DecodeError>(&type)) {
    out.Clear();
    return std::move(*failure);
  }
  return decode(bytes, std::get<ContentType>(type), out);
}

std::string encode(const google::protobuf::Message& message, ContentType type) {
  return type == ContentType::kJson ? encode_json(message) : encode_binary(message);
}

std::string encode_json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;  // "reason": "" is part of the contract
  options.preserve_proto_field_names = false;    // lowerCamelCase, as the contract spells it
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  // Printing fails only for messages no decode yields and ffe must not build (a string
  // that is not UTF-8): a programmer error.
  FFE_ASSERT(status.ok(), "encode_json: protobuf could not print a message ffe built");
  return json;
}

std::string encode_binary(const google::protobuf::Message& message) {
  std::string bytes;
  FFE_ASSERT(message.SerializeToString(&bytes), "encode_binary: protobuf could not serialize");
  return bytes;
}

Decoded<v1::OrderCommand> decode_order_command(std::string_view bytes,
                                               std::optional<std::string_view> content_type) {
  v1::OrderCommand command;
  if (auto failure = decode(bytes, content_type, command)) return std::move(*failure);
  // What decides between ff.dlq and the owning shard. A PlaceOrder needs only an id to route
  // by: every other rule is the decider's, so that a broken PlaceOrder is a REJECTED order.
  // A CancelOrder has no outcome of its own to carry a refusal, so every rule is checked
  // here and a broken one goes to ff.dlq (invariant 6), whatever state its order is in.
  Validation unusable;
  switch (command.command_case()) {
    case v1::OrderCommand::kPlaceOrder:
      unusable = validate_id(command.place_order().order_id(), "placeOrder.orderId");
      break;
    case v1::OrderCommand::kCancelOrder: unusable = validate(command); break;
    case v1::OrderCommand::COMMAND_NOT_SET: unusable = validate(command); break;
  }
  if (unusable) return error(unusable->to_string());
  return command;
}

Decoded<v1::InventoryCommand> decode_inventory_command(
    std::string_view bytes, std::optional<std::string_view> content_type) {
  v1::InventoryCommand command;
  if (auto failure = decode(bytes, content_type, command)) return std::move(*failure);
  Validation unusable;
  switch (command.command_case()) {
    case v1::InventoryCommand::kReceiveStock:
      unusable = validate_id(command.receive_stock().sku(), "receiveStock.sku");
      break;
    case v1::InventoryCommand::kAdjustStock:
      unusable = validate_id(command.adjust_stock().sku(), "adjustStock.sku");
      break;
    case v1::InventoryCommand::COMMAND_NOT_SET: unusable = validate(command); break;
  }
  if (unusable) return error(unusable->to_string());
  return command;
}

Decoded<v1::PaymentReply> decode_payment_reply(std::string_view bytes,
                                               std::optional<std::string_view> content_type) {
  return decode_and_validate<v1::PaymentReply>(bytes, content_type);
}

Decoded<v1::ShipmentReply> decode_shipment_reply(std::string_view bytes,
                                                 std::optional<std::string_view> content_type) {
  return decode_and_validate<v1::ShipmentReply>(bytes, content_type);
}

Decoded<v1::PaymentRequest> decode_payment_request(std::string_view bytes,
                                                   std::optional<std::string_view> content_type) {
  return decode_and_validate<v1::PaymentRequest>(bytes, content_type);
}

Decoded<v1::ShipmentRequest> decode_shipment_request(std::string_view bytes,
                                                     std::optional<std::string_view> content_type) {
  return decode_and_validate<v1::ShipmentRequest>(bytes, content_type);
}

}  // namespace ffe::events
