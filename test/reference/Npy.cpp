//===- Npy.cpp - Minimal .npy reader and writer ---------------------------===//

#include "Npy.h"

#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace npy {

const char *dtypeName(DType t) {
  switch (t) {
  case DType::F32: return "f32";
  case DType::F64: return "f64";
  case DType::F16: return "f16";
  case DType::BF16: return "bf16";
  case DType::I32: return "i32";
  case DType::I64: return "i64";
  }
  return "?";
}

const char *dtypeDescr(DType t) {
  switch (t) {
  case DType::F32: return "<f4";
  case DType::F64: return "<f8";
  case DType::F16: return "<f2";
  case DType::BF16: return "<V2";
  case DType::I32: return "<i4";
  case DType::I64: return "<i8";
  }
  return "?";
}

bool isIntDType(DType t) { return t == DType::I32 || t == DType::I64; }

static int elementBytes(DType t) {
  switch (t) {
  case DType::F16: case DType::BF16: return 2;
  case DType::F32: case DType::I32: return 4;
  case DType::F64: case DType::I64: return 8;
  }
  return 0;
}

int64_t Array::numElements() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k)
    s += (k ? "," : "") + std::to_string(shape[k]);
  return s + "]";
}

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

static uint32_t floatBits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}

static float bitsFloat(uint32_t b) {
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

uint16_t f32ToBf16(float x) {
  uint32_t b = floatBits(x);
  if (std::isnan(x)) // keep the sign, make sure the result stays a NaN
    return uint16_t((b >> 16) | 0x0040u);
  uint32_t lsb = (b >> 16) & 1u;
  b += 0x7FFFu + lsb; // round to nearest, ties to even; overflow gives inf
  return uint16_t(b >> 16);
}

float bf16ToF32(uint16_t h) { return bitsFloat(uint32_t(h) << 16); }

uint16_t f64ToF16(double x) {
  uint16_t sign = std::signbit(x) ? 0x8000u : 0u;
  if (std::isnan(x)) return uint16_t(sign | 0x7E00u);
  double a = std::fabs(x);
  // 65504 is the largest half; values from 65520 (the midpoint to 2^16) up
  // round to infinity.
  if (a >= 65520.0) return uint16_t(sign | 0x7C00u);
  if (a < std::ldexp(1.0, -14)) {
    // Subnormal (or zero): units of 2^-24, rounded to nearest even. A
    // result of 1024 is the smallest normal, whose encoding is 0x0400.
    double q = std::nearbyint(std::ldexp(a, 24));
    return uint16_t(sign | uint16_t(q));
  }
  int ex;
  double fr = std::frexp(a, &ex); // a = fr * 2^ex, fr in [0.5, 1)
  int e = ex - 1;                 // a = m * 2^e, m in [1, 2)
  double m = fr * 2.0;
  double q = std::nearbyint((m - 1.0) * 1024.0); // exact product
  if (q >= 1024.0) {
    q = 0.0;
    ++e;
  }
  if (e > 15) return uint16_t(sign | 0x7C00u);
  return uint16_t(sign | uint16_t((e + 15) << 10) | uint16_t(q));
}

double f16ToF64(uint16_t h) {
  double sign = (h & 0x8000u) ? -1.0 : 1.0;
  int e = (h >> 10) & 0x1F;
  int m = h & 0x3FF;
  if (e == 0x1F)
    return m ? std::numeric_limits<double>::quiet_NaN()
             : sign * std::numeric_limits<double>::infinity();
  if (e == 0) return sign * std::ldexp(double(m), -24);
  return sign * std::ldexp(1.0 + double(m) / 1024.0, e - 15);
}

double roundTo(DType t, double x) {
  switch (t) {
  case DType::F64: return x;
  case DType::F32: return double(float(x));
  case DType::F16: return f16ToF64(f64ToF16(x));
  case DType::BF16: return double(bf16ToF32(f32ToBf16(float(x))));
  default: return x;
  }
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

static void putLE(std::string &out, uint64_t v, int bytes) {
  for (int k = 0; k < bytes; ++k) out.push_back(char((v >> (8 * k)) & 0xFF));
}

static uint64_t getLE(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int k = 0; k < bytes; ++k) v |= uint64_t(p[k]) << (8 * k);
  return v;
}

bool write(const std::string &path, const Array &a, std::string *err) {
  int64_t n = a.numElements();
  if (n < 0 || (a.isInt() ? int64_t(a.i.size()) : int64_t(a.f.size())) != n) {
    *err = path + ": data size does not match shape " + shapeString(a.shape);
    return false;
  }
  std::string dict = "{'descr': '" + std::string(dtypeDescr(a.dtype)) +
                     "', 'fortran_order': False, 'shape': (";
  for (size_t k = 0; k < a.shape.size(); ++k)
    dict += (k ? ", " : "") + std::to_string(a.shape[k]);
  if (a.shape.size() == 1) dict += ",";
  dict += "), }";
  // Pad with spaces and a newline so that the data starts at a multiple of
  // 64 bytes; version 1.0 has a 2-byte header length, 2.0 a 4-byte one.
  int version = 1;
  size_t pre = 10;
  size_t total = (pre + dict.size() + 1 + 63) / 64 * 64;
  if (total - pre > 65535) {
    version = 2;
    pre = 12;
    total = (pre + dict.size() + 1 + 63) / 64 * 64;
  }
  dict.append(total - pre - dict.size() - 1, ' ');
  dict.push_back('\n');

  std::string out = "\x93NUMPY";
  out.push_back(char(version));
  out.push_back(char(0));
  putLE(out, dict.size(), version == 1 ? 2 : 4);
  out += dict;
  int eb = elementBytes(a.dtype);
  out.reserve(out.size() + size_t(n) * size_t(eb));
  for (int64_t k = 0; k < n; ++k) {
    switch (a.dtype) {
    case DType::F32: putLE(out, floatBits(float(a.f[k])), 4); break;
    case DType::F64: {
      uint64_t b;
      std::memcpy(&b, &a.f[k], 8);
      putLE(out, b, 8);
      break;
    }
    case DType::F16: putLE(out, f64ToF16(a.f[k]), 2); break;
    case DType::BF16: putLE(out, f32ToBf16(float(a.f[k])), 2); break;
    case DType::I32: putLE(out, uint64_t(uint32_t(int32_t(a.i[k]))), 4); break;
    case DType::I64: putLE(out, uint64_t(a.i[k]), 8); break;
    }
  }
  std::ofstream f(path, std::ios::binary);
  if (!f) {
    *err = "cannot open " + path + " for writing";
    return false;
  }
  f.write(out.data(), std::streamsize(out.size()));
  if (!f) {
    *err = "cannot write " + path;
    return false;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

namespace {
/// Parser of the header, a Python dict literal such as
/// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
struct HeaderParser {
  const std::string &s;
  size_t p = 0;
  explicit HeaderParser(const std::string &s) : s(s) {}

  void skip() {
    while (p < s.size() && std::isspace(static_cast<unsigned char>(s[p]))) ++p;
  }
  bool eat(char c) {
    skip();
    if (p < s.size() && s[p] == c) {
      ++p;
      return true;
    }
    return false;
  }
  bool string(std::string *out) {
    skip();
    if (p >= s.size() || (s[p] != '\'' && s[p] != '"')) return false;
    char q = s[p++];
    size_t e = s.find(q, p);
    if (e == std::string::npos) return false;
    *out = s.substr(p, e - p);
    p = e + 1;
    return true;
  }
  bool word(std::string *out) {
    skip();
    size_t b = p;
    while (p < s.size() && std::isalpha(static_cast<unsigned char>(s[p]))) ++p;
    *out = s.substr(b, p - b);
    return !out->empty();
  }
  bool tuple(std::vector<int64_t> *out) {
    if (!eat('(')) return false;
    out->clear();
    while (true) {
      if (eat(')')) return true;
      skip();
      size_t b = p;
      while (p < s.size() && std::isdigit(static_cast<unsigned char>(s[p]))) ++p;
      if (p == b) return false;
      out->push_back(std::stoll(s.substr(b, p - b)));
      skip();
      if (p < s.size() && s[p] == 'L') ++p; // Python 2 long suffix
      if (!eat(',')) return eat(')');
    }
  }
};
} // namespace

static bool parseDescr(const std::string &d, DType *t) {
  if (d == "<f4") *t = DType::F32;
  else if (d == "<f8") *t = DType::F64;
  else if (d == "<f2") *t = DType::F16;
  else if (d == "<V2" || d == "|V2" || d == "bfloat16") *t = DType::BF16;
  else if (d == "<i4") *t = DType::I32;
  else if (d == "<i8") *t = DType::I64;
  else return false;
  return true;
}

bool read(const std::string &path, Array *a, std::string *err) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *err = "cannot open " + path;
    return false;
  }
  std::string buf((std::istreambuf_iterator<char>(f)),
                  std::istreambuf_iterator<char>());
  const auto *u = reinterpret_cast<const unsigned char *>(buf.data());
  if (buf.size() < 10 || buf.compare(0, 6, "\x93NUMPY") != 0) {
    *err = path + ": not a .npy file";
    return false;
  }
  int major = u[6];
  size_t hlen, pre;
  if (major == 1) {
    hlen = size_t(getLE(u + 8, 2));
    pre = 10;
  } else if ((major == 2 || major == 3) && buf.size() >= 12) {
    hlen = size_t(getLE(u + 8, 4));
    pre = 12;
  } else {
    *err = path + ": unsupported .npy version " + std::to_string(major);
    return false;
  }
  if (pre + hlen > buf.size()) {
    *err = path + ": truncated header";
    return false;
  }
  std::string header = buf.substr(pre, hlen);
  HeaderParser hp(header);
  std::string descr;
  bool fortran = false, haveDescr = false, haveShape = false;
  std::vector<int64_t> shape;
  if (!hp.eat('{')) {
    *err = path + ": malformed header";
    return false;
  }
  while (!hp.eat('}')) {
    std::string key;
    if (!hp.string(&key) || !hp.eat(':')) {
      *err = path + ": malformed header";
      return false;
    }
    bool ok;
    if (key == "descr") {
      ok = hp.string(&descr);
      haveDescr = true;
    } else if (key == "fortran_order") {
      std::string w;
      ok = hp.word(&w) && (w == "True" || w == "False");
      fortran = w == "True";
    } else if (key == "shape") {
      ok = hp.tuple(&shape);
      haveShape = true;
    } else {
      ok = false;
    }
    if (!ok) {
      *err = path + ": malformed header entry '" + key + "'";
      return false;
    }
    hp.eat(',');
  }
  if (!haveDescr || !haveShape) {
    *err = path + ": header lacks descr or shape";
    return false;
  }
  if (fortran) {
    *err = path + ": Fortran order is not supported";
    return false;
  }
  DType t;
  if (!parseDescr(descr, &t)) {
    *err = path + ": unsupported dtype '" + descr + "'";
    return false;
  }
  a->dtype = t;
  a->shape = shape;
  a->f.clear();
  a->i.clear();
  int64_t n = a->numElements();
  int eb = elementBytes(t);
  size_t off = pre + hlen;
  if (buf.size() - off < size_t(n) * size_t(eb)) {
    *err = path + ": data is shorter than shape " + shapeString(shape) +
           " needs";
    return false;
  }
  if (a->isInt()) a->i.resize(size_t(n));
  else a->f.resize(size_t(n));
  for (int64_t k = 0; k < n; ++k) {
    const unsigned char *q = u + off + size_t(k) * size_t(eb);
    switch (t) {
    case DType::F32: a->f[k] = double(bitsFloat(uint32_t(getLE(q, 4)))); break;
    case DType::F64: {
      uint64_t b = getLE(q, 8);
      std::memcpy(&a->f[k], &b, 8);
      break;
    }
    case DType::F16: a->f[k] = f16ToF64(uint16_t(getLE(q, 2))); break;
    case DType::BF16: a->f[k] = double(bf16ToF32(uint16_t(getLE(q, 2)))); break;
    case DType::I32: a->i[k] = int64_t(int32_t(uint32_t(getLE(q, 4)))); break;
    case DType::I64: a->i[k] = int64_t(getLE(q, 8)); break;
    }
  }
  return true;
}

} // namespace npy
