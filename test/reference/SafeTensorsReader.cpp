//===- SafeTensorsReader.cpp - Minimal safetensors reader -----------------===//

#include "SafeTensorsReader.h"
#include "Json.h"
#include "Npy.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace st {

int dtypeBytes(const std::string &dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16")
    return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" ||
      dtype == "F8_E4M3" || dtype == "F8_E5M2")
    return 1;
  return 0;
}

/// float8_e4m3fn: sign, 4 exponent bits (bias 7), 3 mantissa bits;
/// subnormals below exponent 1; S.1111.111 is NaN; no infinities.
double e4m3ToF64(unsigned char byte) {
  int exponent = (byte >> 3) & 15, mantissa = byte & 7;
  double sign = (byte & 0x80) ? -1.0 : 1.0;
  if (exponent == 15 && mantissa == 7) return std::nan("");
  if (exponent == 0) return sign * std::ldexp(mantissa / 8.0, -6);
  return sign * std::ldexp(1.0 + mantissa / 8.0, exponent - 7);
}

static bool readWhole(const std::string &path, std::string *text,
                      std::string *err) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *err = path + ": cannot open";
    return false;
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  *text = ss.str();
  return true;
}

/// A non-negative integer JSON value.
static bool asCount(const json::Value &v, uint64_t *out) {
  if (v.kind != json::Value::Kind::Number || !v.isInteger || v.integer < 0)
    return false;
  *out = uint64_t(v.integer);
  return true;
}

bool Reader::openFile(const std::string &path, std::string *err) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *err = path + ": cannot open";
    return false;
  }
  f.seekg(0, std::ios::end);
  uint64_t fileSize = uint64_t(f.tellg());
  f.seekg(0);
  unsigned char head[8];
  if (fileSize < 8 || !f.read(reinterpret_cast<char *>(head), 8)) {
    *err = path + ": shorter than the 8-byte header size";
    return false;
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | head[i];
  if (n > fileSize - 8) {
    *err = path + ": header size " + std::to_string(n) + " exceeds the file";
    return false;
  }
  std::string text(size_t(n), '\0');
  if (!f.read(&text[0], std::streamsize(n))) {
    *err = path + ": cannot read the header";
    return false;
  }
  json::Value header;
  std::string jsonErr;
  if (!json::parse(text, &header, &jsonErr)) {
    *err = path + ": invalid header JSON: " + jsonErr;
    return false;
  }
  if (header.kind != json::Value::Kind::Object) {
    *err = path + ": the header is not a JSON object";
    return false;
  }
  uint64_t dataStart = 8 + n, dataSize = fileSize - dataStart;
  for (const auto &[name, info] : header.object) {
    if (name == "__metadata__") continue;
    auto bad = [&](const std::string &what) {
      *err = path + ": tensor " + name + ": " + what;
      return false;
    };
    const json::Value *dtype = info.get("dtype");
    const json::Value *shape = info.get("shape");
    const json::Value *offsets = info.get("data_offsets");
    if (!dtype || dtype->kind != json::Value::Kind::String)
      return bad("no \"dtype\" string");
    if (!shape || shape->kind != json::Value::Kind::Array)
      return bad("no \"shape\" array");
    if (!offsets || offsets->kind != json::Value::Kind::Array ||
        offsets->array.size() != 2)
      return bad("no \"data_offsets\" pair");
    TensorEntry t;
    t.name = name;
    t.dtype = dtype->string;
    t.file = path;
    uint64_t count = 1;
    for (const json::Value &d : shape->array) {
      uint64_t size;
      if (!asCount(d, &size)) return bad("a shape entry is not a count");
      t.shape.push_back(int64_t(size));
      count *= size;
    }
    uint64_t begin, end;
    if (!asCount(offsets->array[0], &begin) ||
        !asCount(offsets->array[1], &end) || begin > end || end > dataSize)
      return bad("data_offsets outside the data section");
    int width = dtypeBytes(t.dtype);
    if (width == 0) return bad("unknown dtype " + t.dtype);
    if (end - begin != count * uint64_t(width))
      return bad("spans " + std::to_string(end - begin) + " bytes, expected " +
                 std::to_string(count * uint64_t(width)));
    t.offset = dataStart + begin;
    t.bytes = end - begin;
    if (all.count(name)) return bad("appears in two files");
    all[name] = t;
  }
  return true;
}

bool Reader::openDir(const std::string &dir, std::string *err) {
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  fs::path single = fs::path(dir) / "model.safetensors";
  if (!fs::exists(index)) {
    if (!fs::exists(single)) {
      *err = dir + ": no model.safetensors or model.safetensors.index.json";
      return false;
    }
    return openFile(single.string(), err);
  }
  std::string text, jsonErr;
  if (!readWhole(index.string(), &text, err)) return false;
  json::Value v;
  if (!json::parse(text, &v, &jsonErr)) {
    *err = index.string() + ": invalid JSON: " + jsonErr;
    return false;
  }
  const json::Value *map = v.get("weight_map");
  if (!map || map->kind != json::Value::Kind::Object) {
    *err = index.string() + ": no \"weight_map\" object";
    return false;
  }
  std::set<std::string> shards;
  for (const auto &[name, file] : map->object) {
    if (file.kind != json::Value::Kind::String) {
      *err = index.string() + ": the shard of " + name + " is not a string";
      return false;
    }
    shards.insert(file.string);
  }
  for (const std::string &shard : shards)
    if (!openFile((fs::path(dir) / shard).string(), err)) return false;
  for (const auto &[name, file] : map->object) {
    const TensorEntry *t = find(name);
    if (!t || t->file != (fs::path(dir) / file.string).string()) {
      *err = index.string() + ": maps " + name + " to " + file.string +
             ", which does not hold it";
      return false;
    }
  }
  return true;
}

const TensorEntry *Reader::find(const std::string &name) const {
  auto it = all.find(name);
  return it == all.end() ? nullptr : &it->second;
}

bool Reader::read(const TensorEntry &t, std::vector<double> *out,
                  std::string *err) const {
  if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16" &&
      t.dtype != "F8_E4M3" && t.dtype != "U8" && t.dtype != "I8" &&
      t.dtype != "I32") {
    *err = t.file + ": tensor " + t.name + " has dtype " + t.dtype +
           " (expected F32, F16, BF16, F8_E4M3, U8, I8 or I32)";
    return false;
  }
  std::ifstream f(t.file, std::ios::binary);
  std::string bytes(size_t(t.bytes), '\0');
  f.seekg(std::streamoff(t.offset));
  if (!f || !f.read(&bytes[0], std::streamsize(t.bytes))) {
    *err = t.file + ": cannot read tensor " + t.name;
    return false;
  }
  const unsigned char *p = reinterpret_cast<const unsigned char *>(bytes.data());
  int width = dtypeBytes(t.dtype);
  out->resize(size_t(t.bytes) / size_t(width));
  for (size_t i = 0; i < out->size(); ++i, p += width) {
    if (t.dtype == "F32") {
      uint32_t b = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                   uint32_t(p[3]) << 24;
      float x;
      std::memcpy(&x, &b, 4);
      (*out)[i] = x;
    } else if (t.dtype == "I32") {
      uint32_t b = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                   uint32_t(p[3]) << 24;
      (*out)[i] = double(int32_t(b));
    } else if (t.dtype == "F8_E4M3") {
      (*out)[i] = e4m3ToF64(p[0]);
    } else if (t.dtype == "U8") {
      (*out)[i] = p[0];
    } else if (t.dtype == "I8") {
      (*out)[i] = double(int8_t(p[0]));
    } else {
      uint16_t h = uint16_t(p[0] | p[1] << 8);
      (*out)[i] = t.dtype == "F16" ? npy::f16ToF64(h) : npy::bf16ToF32(h);
    }
  }
  return true;
}

} // namespace st
