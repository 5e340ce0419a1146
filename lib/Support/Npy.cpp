//===- Npy.cpp - NumPy .npy arrays ----------------------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Support/Npy.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

using namespace mlir::moe;
using namespace mlir::moe::npy;
using llvm::StringRef;

//===----------------------------------------------------------------------===//
// 16-bit floats
//===----------------------------------------------------------------------===//

static uint32_t bitsOf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

static float floatOf(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

uint16_t npy::floatToBF16(float value) {
  uint32_t bits = bitsOf(value);
  if (std::isnan(value))
    return static_cast<uint16_t>((bits >> 16) | 0x40);
  uint32_t roundingBias = 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + roundingBias) >> 16);
}

float npy::bf16ToFloat(uint16_t bits) {
  return floatOf(static_cast<uint32_t>(bits) << 16);
}

uint16_t npy::floatToF16(float value) {
  uint32_t bits = bitsOf(value);
  uint32_t sign = (bits >> 16) & 0x8000;
  uint32_t exponent = (bits >> 23) & 0xff;
  uint32_t mantissa = bits & 0x7fffff;
  if (exponent == 0xff) // inf or NaN
    return static_cast<uint16_t>(sign | 0x7c00 | (mantissa ? 0x200 : 0));
  int32_t e = static_cast<int32_t>(exponent) - 127 + 15;
  if (e >= 0x1f) // overflow
    return static_cast<uint16_t>(sign | 0x7c00);
  if (e <= 0) { // subnormal or zero
    if (e < -10)
      return static_cast<uint16_t>(sign);
    mantissa |= 0x800000;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mantissa >> shift;
    uint32_t rest = mantissa & ((1u << shift) - 1);
    uint32_t midpoint = 1u << (shift - 1);
    if (rest > midpoint || (rest == midpoint && (half & 1)))
      ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = (static_cast<uint32_t>(e) << 10) | (mantissa >> 13);
  uint32_t rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
    ++half; // may carry into the exponent, up to inf: still correct
  return static_cast<uint16_t>(sign | half);
}

float npy::f16ToFloat(uint16_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  uint32_t exponent = (bits >> 10) & 0x1f;
  uint32_t mantissa = bits & 0x3ff;
  if (exponent == 0x1f)
    return floatOf(sign | 0x7f800000 | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0)
      return floatOf(sign);
    float value = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -value : value;
  }
  return floatOf(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

float npy::f8E4M3ToFloat(uint8_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x80) << 24;
  uint32_t exponent = (bits >> 3) & 0xf, mantissa = bits & 0x7;
  if (exponent == 0xf && mantissa == 0x7)
    return floatOf(sign | 0x7fc00000u);
  if (exponent == 0) { // zero or subnormal: mantissa * 2^-9
    float magnitude = static_cast<float>(mantissa) * 0x1p-9f;
    return sign ? -magnitude : magnitude;
  }
  return floatOf(sign | ((exponent - 7 + 127) << 23) | (mantissa << 20));
}

uint8_t npy::floatToF8E4M3(float value) {
  uint8_t sign = std::signbit(value) ? 0x80 : 0;
  if (std::isnan(value))
    return sign | 0x7f;
  float magnitude = std::fabs(value);
  if (magnitude >= 448.0f)
    return sign | 0x7e;
  // The positive codes 0x00..0x7e increase with their value: find the
  // two that bracket `magnitude` and take the nearer, the even one on a
  // tie.
  uint8_t low = 0, high = 0x7e;
  while (high - low > 1) {
    uint8_t mid = static_cast<uint8_t>((low + high) / 2);
    (f8E4M3ToFloat(mid) <= magnitude ? low : high) = mid;
  }
  float below = magnitude - f8E4M3ToFloat(low);
  float above = f8E4M3ToFloat(high) - magnitude;
  uint8_t code = below < above   ? low
                 : above < below ? high
                 : (low & 1)     ? high
                                 : low;
  return sign | code;
}

//===----------------------------------------------------------------------===//
// DType and Array
//===----------------------------------------------------------------------===//

StringRef npy::descriptor(DType type) {
  switch (type) {
  case DType::F32:
    return "<f4";
  case DType::F64:
    return "<f8";
  case DType::F16:
    return "<f2";
  case DType::BF16:
    return "<V2";
  case DType::I32:
    return "<i4";
  case DType::I64:
    return "<i8";
  case DType::Bool:
    return "|b1";
  }
  llvm_unreachable("unknown dtype");
}

StringRef npy::name(DType type) {
  switch (type) {
  case DType::F32:
    return "float32";
  case DType::F64:
    return "float64";
  case DType::F16:
    return "float16";
  case DType::BF16:
    return "bfloat16";
  case DType::I32:
    return "int32";
  case DType::I64:
    return "int64";
  case DType::Bool:
    return "bool";
  }
  llvm_unreachable("unknown dtype");
}

size_t npy::elementSize(DType type) {
  switch (type) {
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
    return 2;
  case DType::Bool:
    return 1;
  }
  llvm_unreachable("unknown dtype");
}

void Array::Free::operator()(void *p) const { std::free(p); }

Array::Array(DType type, llvm::ArrayRef<int64_t> shape)
    : dtype(type), dims(shape.begin(), shape.end()) {
  // At least one aligned block, so that empty arrays have a valid pointer.
  size_t bytes = std::max<size_t>(numBytes(), 64);
  bytes = (bytes + 63) / 64 * 64;
  storage.reset(std::aligned_alloc(64, bytes));
  std::memset(storage.get(), 0, bytes);
}

int64_t Array::numElements() const {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

double Array::getAsDouble(int64_t i) const {
  const char *p = static_cast<const char *>(data()) + i * elementSize(dtype);
  switch (dtype) {
  case DType::F32: {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  case DType::F64: {
    double v;
    std::memcpy(&v, p, 8);
    return v;
  }
  case DType::F16:
  case DType::BF16: {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return dtype == DType::F16 ? f16ToFloat(v) : bf16ToFloat(v);
  }
  case DType::I32: {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  case DType::I64: {
    int64_t v;
    std::memcpy(&v, p, 8);
    return static_cast<double>(v);
  }
  case DType::Bool:
    return *p ? 1.0 : 0.0;
  }
  llvm_unreachable("unknown dtype");
}

void Array::setFromDouble(int64_t i, double value) {
  char *p = static_cast<char *>(data()) + i * elementSize(dtype);
  switch (dtype) {
  case DType::F32: {
    float v = static_cast<float>(value);
    std::memcpy(p, &v, 4);
    return;
  }
  case DType::F64:
    std::memcpy(p, &value, 8);
    return;
  case DType::F16:
  case DType::BF16: {
    float f = static_cast<float>(value);
    uint16_t v = dtype == DType::F16 ? floatToF16(f) : floatToBF16(f);
    std::memcpy(p, &v, 2);
    return;
  }
  case DType::I32: {
    int32_t v = static_cast<int32_t>(value);
    std::memcpy(p, &v, 4);
    return;
  }
  case DType::I64: {
    int64_t v = static_cast<int64_t>(value);
    std::memcpy(p, &v, 8);
    return;
  }
  case DType::Bool:
    *p = value != 0.0;
    return;
  }
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

static llvm::Error fail(StringRef path, const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 path + ": " + message);
}

/// The value of `key` in the header dictionary, e.g. 'descr': '<f4'.
static std::optional<StringRef> headerValue(StringRef header, StringRef key) {
  std::string quoted = ("'" + key + "'").str();
  size_t at = header.find(quoted);
  if (at == StringRef::npos)
    return std::nullopt;
  StringRef rest = header.drop_front(at + quoted.size()).ltrim();
  if (!rest.consume_front(":"))
    return std::nullopt;
  return rest.ltrim();
}

static std::optional<DType> parseDescriptor(StringRef descr) {
  for (DType type : {DType::F32, DType::F64, DType::F16, DType::BF16,
                     DType::I32, DType::I64, DType::Bool})
    if (descr == descriptor(type))
      return type;
  if (descr == "<b1")
    return DType::Bool;
  return std::nullopt;
}

llvm::Expected<Array> npy::read(StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return fail(path, "cannot read: " + buffer.getError().message());
  StringRef bytes = (*buffer)->getBuffer();
  if (!bytes.starts_with("\x93NUMPY") || bytes.size() < 10)
    return fail(path, "not a .npy file (missing the \\x93NUMPY magic)");
  unsigned major = static_cast<unsigned char>(bytes[6]);
  size_t headerLength, headerStart;
  if (major == 1) {
    headerLength = static_cast<unsigned char>(bytes[8]) |
                   static_cast<unsigned char>(bytes[9]) << 8;
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12)
      return fail(path, "truncated header");
    headerLength = 0;
    for (int i = 0; i < 4; ++i)
      headerLength |= static_cast<size_t>(static_cast<unsigned char>(
                          bytes[8 + i]))
                      << (8 * i);
    headerStart = 12;
  } else {
    return fail(path, "unsupported .npy version " + llvm::Twine(major));
  }
  if (headerStart + headerLength > bytes.size())
    return fail(path, "truncated header");
  StringRef header = bytes.substr(headerStart, headerLength);

  std::optional<StringRef> descr = headerValue(header, "descr");
  std::optional<StringRef> order = headerValue(header, "fortran_order");
  std::optional<StringRef> shapeText = headerValue(header, "shape");
  if (!descr || !order || !shapeText)
    return fail(path, "header lacks descr, fortran_order or shape");
  if (!descr->consume_front("'"))
    return fail(path, "malformed descr");
  StringRef descrValue = descr->take_until([](char c) { return c == '\''; });
  std::optional<DType> type = parseDescriptor(descrValue);
  if (!type)
    return fail(path, "unsupported dtype '" + descrValue +
                          "' (expected <f4, <f8, <f2, <V2 for bfloat16, <i4, "
                          "<i8 or |b1)");
  if (!order->starts_with("False"))
    return fail(path, "Fortran-order arrays are not supported; save C order");
  if (!shapeText->consume_front("("))
    return fail(path, "malformed shape");
  StringRef dimsText = shapeText->take_until([](char c) { return c == ')'; });
  llvm::SmallVector<int64_t> shape;
  llvm::SmallVector<StringRef> parts;
  dimsText.split(parts, ',', -1, /*KeepEmpty=*/false);
  for (StringRef part : parts) {
    part = part.trim();
    if (part.empty())
      continue;
    int64_t dim;
    if (part.getAsInteger(10, dim) || dim < 0)
      return fail(path, "malformed shape entry '" + part + "'");
    shape.push_back(dim);
  }

  Array array(*type, shape);
  size_t dataStart = headerStart + headerLength;
  if (bytes.size() - dataStart != array.numBytes())
    return fail(path, "holds " + llvm::Twine(bytes.size() - dataStart) +
                          " data bytes, expected " +
                          llvm::Twine(array.numBytes()) + " for shape (" +
                          dimsText + ") of " + name(*type));
  std::memcpy(array.data(), bytes.data() + dataStart, array.numBytes());
  return array;
}

llvm::Error npy::write(StringRef path, const Array &array) {
  std::string shape = "(";
  for (int64_t d : array.shape())
    shape += std::to_string(d) + ", ";
  if (array.shape().size() > 1)
    shape.resize(shape.size() - 2);
  else if (array.shape().size() == 1)
    shape.resize(shape.size() - 1);
  shape += ")";
  std::string header = "{'descr': '" + descriptor(array.type()).str() +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces so that the data starts on a 64-byte boundary.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';

  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    return fail(path, "cannot write: " + ec.message());
  os << "\x93NUMPY" << char(1) << char(0);
  os << char(header.size() & 0xff) << char((header.size() >> 8) & 0xff);
  os << header;
  os.write(static_cast<const char *>(array.data()), array.numBytes());
  os.close();
  if (os.has_error())
    return fail(path, "write failed: " + os.error().message());
  return llvm::Error::success();
}
