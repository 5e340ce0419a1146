//===- Json.cpp - Minimal strict JSON parser ------------------------------===//

#include "Json.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace json {

const Value *Value::get(const std::string &key) const {
  if (kind != Kind::Object) return nullptr;
  for (const auto &member : object)
    if (member.first == key) return &member.second;
  return nullptr;
}

const char *Value::kindName() const {
  switch (kind) {
  case Kind::Null: return "null";
  case Kind::Bool: return "a boolean";
  case Kind::Number: return "a number";
  case Kind::String: return "a string";
  case Kind::Array: return "an array";
  case Kind::Object: return "an object";
  }
  return "?";
}

namespace {

class Parser {
public:
  explicit Parser(const std::string &text) : s(text) {}

  bool parseDocument(Value *out) {
    skipSpace();
    if (!parseValue(out, 0)) return false;
    skipSpace();
    if (pos != s.size()) return fail("unexpected text after the value");
    return true;
  }

  std::string error;

private:
  bool fail(const std::string &what) {
    if (error.empty()) error = "at byte " + std::to_string(pos) + ": " + what;
    return false;
  }

  void skipSpace() {
    while (pos < s.size() &&
           (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r'))
      ++pos;
  }

  bool literal(const char *word) {
    size_t n = std::char_traits<char>::length(word);
    if (s.compare(pos, n, word) != 0) return fail("invalid literal");
    pos += n;
    return true;
  }

  bool parseValue(Value *out, int depth) {
    if (depth >= 64) return fail("nesting deeper than 64 levels");
    if (pos >= s.size()) return fail("unexpected end of input");
    char c = s[pos];
    *out = Value();
    switch (c) {
    case '{': return parseObject(out, depth);
    case '[': return parseArray(out, depth);
    case '"':
      out->kind = Value::Kind::String;
      return parseString(&out->string);
    case 't':
      out->kind = Value::Kind::Bool;
      out->boolean = true;
      return literal("true");
    case 'f':
      out->kind = Value::Kind::Bool;
      return literal("false");
    case 'n': return literal("null");
    default:
      if (c == '-' || (c >= '0' && c <= '9')) return parseNumber(out);
      return fail(std::string("unexpected character '") + c + "'");
    }
  }

  bool parseObject(Value *out, int depth) {
    out->kind = Value::Kind::Object;
    ++pos; // {
    skipSpace();
    if (pos < s.size() && s[pos] == '}') {
      ++pos;
      return true;
    }
    for (;;) {
      skipSpace();
      if (pos >= s.size() || s[pos] != '"') return fail("expected a key string");
      std::string key;
      if (!parseString(&key)) return false;
      if (out->get(key)) return fail("duplicate key \"" + key + "\"");
      skipSpace();
      if (pos >= s.size() || s[pos] != ':') return fail("expected ':'");
      ++pos;
      skipSpace();
      Value v;
      if (!parseValue(&v, depth + 1)) return false;
      out->object.emplace_back(std::move(key), std::move(v));
      skipSpace();
      if (pos < s.size() && s[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < s.size() && s[pos] == '}') {
        ++pos;
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  bool parseArray(Value *out, int depth) {
    out->kind = Value::Kind::Array;
    ++pos; // [
    skipSpace();
    if (pos < s.size() && s[pos] == ']') {
      ++pos;
      return true;
    }
    for (;;) {
      skipSpace();
      Value v;
      if (!parseValue(&v, depth + 1)) return false;
      out->array.push_back(std::move(v));
      skipSpace();
      if (pos < s.size() && s[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < s.size() && s[pos] == ']') {
        ++pos;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  static void appendUtf8(std::string *out, uint32_t cp) {
    if (cp < 0x80) {
      *out += char(cp);
    } else if (cp < 0x800) {
      *out += char(0xC0 | (cp >> 6));
      *out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *out += char(0xE0 | (cp >> 12));
      *out += char(0x80 | ((cp >> 6) & 0x3F));
      *out += char(0x80 | (cp & 0x3F));
    } else {
      *out += char(0xF0 | (cp >> 18));
      *out += char(0x80 | ((cp >> 12) & 0x3F));
      *out += char(0x80 | ((cp >> 6) & 0x3F));
      *out += char(0x80 | (cp & 0x3F));
    }
  }

  bool hex4(uint32_t *cp) {
    if (pos + 4 > s.size()) return fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s[pos++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
      else return fail("invalid \\u escape");
    }
    *cp = v;
    return true;
  }

  bool parseString(std::string *out) {
    ++pos; // opening quote
    for (;;) {
      if (pos >= s.size()) return fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s[pos]);
      if (c == '"') {
        ++pos;
        return true;
      }
      if (c < 0x20) return fail("control character in a string");
      if (c != '\\') {
        *out += char(c);
        ++pos;
        continue;
      }
      ++pos;
      if (pos >= s.size()) return fail("unterminated escape");
      char e = s[pos++];
      switch (e) {
      case '"': *out += '"'; break;
      case '\\': *out += '\\'; break;
      case '/': *out += '/'; break;
      case 'b': *out += '\b'; break;
      case 'f': *out += '\f'; break;
      case 'n': *out += '\n'; break;
      case 'r': *out += '\r'; break;
      case 't': *out += '\t'; break;
      case 'u': {
        uint32_t cp = 0;
        if (!hex4(&cp)) return false;
        if (cp >= 0xD800 && cp < 0xDC00) {
          uint32_t low = 0;
          if (s.compare(pos, 2, "\\u") != 0)
            return fail("unpaired surrogate in \\u escape");
          pos += 2;
          if (!hex4(&low)) return false;
          if (low < 0xDC00 || low >= 0xE000)
            return fail("unpaired surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          return fail("unpaired surrogate in \\u escape");
        }
        appendUtf8(out, cp);
        break;
      }
      default: return fail(std::string("invalid escape \\") + e);
      }
    }
  }

  bool digits() {
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    return pos > start;
  }

  bool parseNumber(Value *out) {
    size_t start = pos;
    if (s[pos] == '-') ++pos;
    if (pos < s.size() && s[pos] == '0') {
      ++pos;
    } else if (!digits()) {
      return fail("invalid number");
    }
    bool integer = true;
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      integer = false;
      if (!digits()) return fail("invalid number: digits expected after '.'");
    }
    if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
      ++pos;
      integer = false;
      if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) ++pos;
      if (!digits()) return fail("invalid number: digits expected in exponent");
    }
    std::string text = s.substr(start, pos - start);
    out->kind = Value::Kind::Number;
    out->number = std::strtod(text.c_str(), nullptr);
    if (!std::isfinite(out->number)) return fail("number out of range");
    if (integer) {
      errno = 0;
      char *end = nullptr;
      long long v = std::strtoll(text.c_str(), &end, 10);
      if (errno == 0 && end && *end == '\0') {
        out->isInteger = true;
        out->integer = v;
      }
    }
    return true;
  }

  const std::string &s;
  size_t pos = 0;
};

} // namespace

bool parse(const std::string &text, Value *out, std::string *err) {
  Parser p(text);
  Value v;
  if (!p.parseDocument(&v)) {
    *err = p.error;
    return false;
  }
  *out = std::move(v);
  return true;
}

} // namespace json
