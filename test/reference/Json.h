//===- Json.h - Minimal strict JSON parser ----------------------*- C++ -*-===//
//
// A small JSON parser for the test oracle (config.json, safetensors headers
// and shard indexes), using the C++ standard library only. It is strict
// (RFC 8259): no comments, no trailing commas, no NaN or Infinity, no
// duplicate keys, no control characters in strings, nothing after the
// value; nesting deeper than 64 levels is rejected.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_REFERENCE_JSON_H
#define MOE_REFERENCE_JSON_H

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace json {

struct Value {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0.0;
  /// True for a number written as an integer (no fraction, no exponent)
  /// that fits in int64; then `integer` holds it exactly.
  bool isInteger = false;
  int64_t integer = 0;
  std::string string; // UTF-8
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object; // in file order

  /// The member `key` of an object; nullptr if absent or not an object.
  const Value *get(const std::string &key) const;
  /// "null", "a boolean", "a number", "a string", "an array", "an object".
  const char *kindName() const;
};

/// Parses `text`. On failure returns false and sets `err` to a message with
/// the byte offset.
bool parse(const std::string &text, Value *out, std::string *err);

} // namespace json

#endif // MOE_REFERENCE_JSON_H
