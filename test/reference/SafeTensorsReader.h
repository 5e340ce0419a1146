//===- SafeTensorsReader.h - Minimal safetensors reader ---------*- C++ -*-===//
//
// The test oracle's own reader of Hugging Face checkpoints (C++ standard
// library only, independent of lib/Checkpoint): a directory with
// model.safetensors, or with shards listed by model.safetensors.index.json.
//
// A safetensors file: 8 bytes little-endian header size N, N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
// {...}}, then the data, to which the offsets are relative. The reader
// checks that every entry's byte range fits the file and matches its dtype
// and shape, and, with an index, that every mapped tensor is in its shard.
// Tensor data is read on demand.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_REFERENCE_SAFETENSORSREADER_H
#define MOE_REFERENCE_SAFETENSORSREADER_H

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace st {

struct TensorEntry {
  std::string name;
  std::string dtype; // as the file spells it: "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;
  std::string file;
  uint64_t offset = 0; // absolute byte offset of the data in `file`
  uint64_t bytes = 0;
};

/// Bytes per element of a safetensors dtype; 0 if unknown.
int dtypeBytes(const std::string &dtype);
/// The value of a float8_e4m3fn byte.
double e4m3ToF64(unsigned char byte);

class Reader {
public:
  /// Opens a model directory. Returns false and sets `err` on failure.
  bool openDir(const std::string &dir, std::string *err);
  /// Opens one .safetensors file (adds its tensors).
  bool openFile(const std::string &path, std::string *err);

  /// The tensor `name`, or nullptr.
  const TensorEntry *find(const std::string &name) const;
  /// Every tensor by name.
  const std::map<std::string, TensorEntry> &tensors() const { return all; }

  /// Reads a F32, F16, BF16 or F8_E4M3 tensor as doubles (exact); a U8
  /// tensor as its bytes' values.
  bool read(const TensorEntry &t, std::vector<double> *out,
            std::string *err) const;

private:
  std::map<std::string, TensorEntry> all;
};

} // namespace st

#endif // MOE_REFERENCE_SAFETENSORSREADER_H
