//===- moe-place.cpp - expert placement from load statistics --------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
//   moe-place STATS.json --devices D [-o PLACEMENT.json] [--imbalance X]
//       [--max-experts-per-device N]
//
// Reads a statistics snapshot (docs/monitoring.md, "File formats"), places
// the experts of every layer on D devices (balanced load, few co-activated
// pairs split across devices), and writes the placement JSON next to the
// round-robin baseline. Prints a per-layer summary of both. Every error names
// the file, the field, what was expected and what was found, and writes no
// output.
//
//===----------------------------------------------------------------------===//

#include "moe/Placement/Placement.h"

#include "llvm/ADT/Twine.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

using namespace mlir::moe::placement;
using llvm::StringRef;
using llvm::Twine;
namespace cl = llvm::cl;
namespace json = llvm::json;

static cl::OptionCategory category("moe-place options");

static cl::opt<std::string> inputFile(cl::Positional,
                                      cl::desc("<statistics snapshot JSON>"),
                                      cl::Required, cl::cat(category));
static cl::opt<int64_t> numDevices("devices",
                                   cl::desc("Number of devices (at least 1, "
                                            "at most the experts of a layer)"),
                                   cl::Required, cl::cat(category));
static cl::opt<std::string>
    outputFile("o",
               cl::desc("Write the placement JSON here ('-': to stdout, "
                        "instead of the summary)"),
               cl::value_desc("file"), cl::cat(category));
static cl::opt<double>
    imbalance("imbalance",
              cl::desc("Allowed excess of the largest device load over the "
                       "mean (default 0.05)"),
              cl::init(0.05), cl::cat(category));
static cl::opt<int64_t> maxExpertsOption(
    "max-experts-per-device",
    cl::desc("At most this many experts per device (default: the experts of "
             "the layer over the devices, rounded up)"),
    cl::init(0), cl::cat(category));

/// The refinement's work grows with the cube of the experts: 1024 experts
/// on 128 devices take seconds.
static constexpr int64_t kMaxExperts = 1024;

static int fail(const Twine &message) {
  llvm::errs() << "moe-place: error: " << message << "\n";
  return 1;
}

//===----------------------------------------------------------------------===//
// Reading the snapshot
//===----------------------------------------------------------------------===//

namespace {
struct Layer {
  std::string function;
  LayerStats stats;
  bool hasCoactivation = false;
};

/// Checks the fields of a snapshot, with errors of the form
/// `FILE: PATH: expected WHAT, found VALUE`.
class SnapshotReader {
public:
  explicit SnapshotReader(StringRef file) : file(file) {}

  llvm::Expected<std::vector<Layer>> read(const json::Value &root);

private:
  llvm::Error invalid(const Twine &path, const Twine &expected,
                      const json::Value *found) const;
  llvm::Expected<int64_t> integer(const json::Value *value, const Twine &path,
                                  int64_t min, int64_t max,
                                  const Twine &expected) const;
  llvm::Expected<Layer> readLayer(const json::Value &value,
                                  const std::string &path) const;
  llvm::Error readCoactivation(const json::Value &value,
                               const std::string &path, Layer &layer) const;

  StringRef file;
};
} // namespace

/// A value as JSON, shortened to fit in a message.
static std::string describe(const json::Value &value) {
  std::string text = llvm::formatv("{0}", value).str();
  if (text.size() > 48)
    text = text.substr(0, 45) + "...";
  return text;
}

llvm::Error SnapshotReader::invalid(const Twine &path, const Twine &expected,
                                    const json::Value *found) const {
  return llvm::createStringError(
      file + ": " + path + ": expected " + expected + ", found " +
      (found ? describe(*found) : std::string("nothing")));
}

llvm::Expected<int64_t> SnapshotReader::integer(const json::Value *value,
                                                const Twine &path, int64_t min,
                                                int64_t max,
                                                const Twine &expected) const {
  std::optional<int64_t> number;
  if (value)
    number = value->getAsInteger();
  if (!number || *number < min || *number > max)
    return invalid(path, expected, value);
  return *number;
}

llvm::Expected<std::vector<Layer>>
SnapshotReader::read(const json::Value &root) {
  const json::Object *object = root.getAsObject();
  if (!object)
    return invalid("top level", "an object", &root);
  if (llvm::Error err =
          integer(object->get("version"), "version", 1, 1, "1").takeError())
    return std::move(err);
  const json::Array *layers = object->getArray("layers");
  if (!layers)
    return invalid("layers", "an array", object->get("layers"));
  std::vector<Layer> result;
  for (size_t i = 0; i < layers->size(); ++i) {
    llvm::Expected<Layer> layer =
        readLayer((*layers)[i], "layers[" + std::to_string(i) + "]");
    if (!layer)
      return layer.takeError();
    result.push_back(std::move(*layer));
  }
  return result;
}

llvm::Expected<Layer> SnapshotReader::readLayer(const json::Value &value,
                                                const std::string &path) const {
  const json::Object *object = value.getAsObject();
  if (!object)
    return invalid(path, "an object", &value);
  Layer layer;
  std::optional<StringRef> function = object->getString("function");
  if (!function)
    return invalid(path + ".function", "a string", object->get("function"));
  layer.function = function->str();

  llvm::Expected<int64_t> numExperts =
      integer(object->get("num_experts"), path + ".num_experts", 1, kMaxExperts,
              "an integer from 1 to " + Twine(kMaxExperts));
  if (!numExperts)
    return numExperts.takeError();
  const json::Array *assignments = object->getArray("assignments");
  if (!assignments || int64_t(assignments->size()) != *numExperts)
    return invalid(path + ".assignments",
                   "an array of num_experts (" + Twine(*numExperts) +
                       ") integers",
                   object->get("assignments"));
  for (size_t e = 0; e < assignments->size(); ++e) {
    llvm::Expected<int64_t> load =
        integer(&(*assignments)[e], path + ".assignments[" + Twine(e) + "]", 0,
                std::numeric_limits<int64_t>::max(), "an integer >= 0");
    if (!load)
      return load.takeError();
    layer.stats.loads.push_back(*load);
  }

  if (const json::Value *coactivation = object->get("coactivation"))
    if (llvm::Error err = readCoactivation(*coactivation, path, layer))
      return std::move(err);
  std::string problem = checkStats(layer.stats);
  if (!problem.empty())
    return llvm::createStringError(file + ": " + path + ": " + problem);
  return layer;
}

llvm::Error SnapshotReader::readCoactivation(const json::Value &value,
                                             const std::string &path,
                                             Layer &layer) const {
  const json::Array *entries = value.getAsArray();
  if (!entries)
    return invalid(path + ".coactivation", "an array of [i, j, count]", &value);
  int64_t numExperts = layer.stats.loads.size();
  std::map<std::pair<int64_t, int64_t>, size_t> seen;
  for (size_t k = 0; k < entries->size(); ++k) {
    std::string where = path + ".coactivation[" + std::to_string(k) + "]";
    const json::Value &entry = (*entries)[k];
    const json::Array *triple = entry.getAsArray();
    if (!triple || triple->size() != 3)
      return invalid(where, "[i, j, count]", &entry);
    std::optional<int64_t> i = (*triple)[0].getAsInteger();
    std::optional<int64_t> j = (*triple)[1].getAsInteger();
    std::optional<int64_t> count = (*triple)[2].getAsInteger();
    if (!i || !j || !count)
      return invalid(where, "three integers [i, j, count]", &entry);
    if (*i < 0 || *j >= numExperts || *i >= *j)
      return invalid(where,
                     "expert indices 0 <= i < j < num_experts (" +
                         Twine(numExperts) + ")",
                     &entry);
    if (*count < 0)
      return invalid(where, "a count >= 0", &entry);
    auto [it, inserted] = seen.emplace(std::make_pair(*i, *j), k);
    if (!inserted)
      return invalid(where,
                     "each pair once (it is also coactivation[" +
                         Twine(it->second) + "])",
                     &entry);
    layer.stats.coactivation.push_back(
        Coactivation{unsigned(*i), unsigned(*j), *count});
  }
  layer.hasCoactivation = true;
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Writing the placement and the summary
//===----------------------------------------------------------------------===//

namespace {
struct LayerResult {
  const Layer *layer;
  unsigned maxExperts;
  int64_t loadBound;
  Placement placed;
  Placement robin;
};
} // namespace

static void writeIntegers(llvm::raw_ostream &os, llvm::ArrayRef<int64_t> xs) {
  os << "[";
  for (size_t k = 0; k < xs.size(); ++k)
    os << (k ? ", " : "") << xs[k];
  os << "]";
}

static std::string ratio(double value) {
  std::string text;
  llvm::raw_string_ostream(text) << llvm::format("%.6g", value);
  return text;
}

static void writePlacement(llvm::raw_ostream &os,
                           const std::vector<LayerResult> &results) {
  os << "{\n  \"version\": 1,\n  \"devices\": " << numDevices
     << ",\n  \"imbalance\": " << ratio(imbalance) << ",\n  \"layers\": [";
  for (size_t i = 0; i < results.size(); ++i) {
    const LayerResult &r = results[i];
    std::vector<int64_t> devices(r.placed.deviceOfExpert.begin(),
                                 r.placed.deviceOfExpert.end());
    os << (i ? "," : "")
       << "\n    {\n      \"function\": " << json::Value(r.layer->function)
       << ",\n      \"num_experts\": " << r.layer->stats.loads.size()
       << ",\n      \"max_experts_per_device\": " << r.maxExperts
       << ",\n      \"load_bound\": " << r.loadBound
       << ",\n      \"coactivation_recorded\": "
       << (r.layer->hasCoactivation ? "true" : "false")
       << ",\n      \"device_of_expert\": ";
    writeIntegers(os, devices);
    os << ",\n      \"device_load\": ";
    writeIntegers(os, r.placed.deviceLoad);
    os << ",\n      \"max_device_load_ratio\": " << ratio(r.placed.maxLoadRatio)
       << ",\n      \"within_load_bound\": "
       << (r.placed.maxLoad() <= r.loadBound ? "true" : "false")
       << ",\n      \"cut_coactivation\": " << r.placed.cut
       << ",\n      \"round_robin\": {\"device_load\": ";
    writeIntegers(os, r.robin.deviceLoad);
    os << ", \"max_device_load_ratio\": " << ratio(r.robin.maxLoadRatio)
       << ", \"cut_coactivation\": " << r.robin.cut << "}\n    }";
  }
  os << (results.empty() ? "]\n}\n" : "\n  ]\n}\n");
}

static std::string count(int64_t n, StringRef noun) {
  return std::to_string(n) + " " + noun.str() + (n == 1 ? "" : "s");
}

static void printSummary(llvm::raw_ostream &os,
                         const std::vector<LayerResult> &results) {
  os << "moe-place: " << count(results.size(), "layer") << " on "
     << count(numDevices, "device") << ", imbalance " << ratio(imbalance)
     << "\n";
  for (size_t i = 0; i < results.size(); ++i) {
    const LayerResult &r = results[i];
    bool graph = r.layer->hasCoactivation;
    os << "layer " << i << " " << r.layer->function << ": "
       << count(r.layer->stats.loads.size(), "expert") << ", at most "
       << r.maxExperts << " per device, load bound " << r.loadBound << "\n";
    if (!graph)
      os << "  no co-activation data: placed by load only\n";
    if (r.placed.maxLoad() > r.loadBound)
      os << "  load bound not met: max device load " << r.placed.maxLoad()
         << " is the lowest found\n";
    auto line = [&](StringRef name, const Placement &p) {
      os << llvm::formatv("  {0,-12} max/mean load {1:F3}", name,
                          p.maxLoadRatio);
      if (graph)
        os << "  cut " << p.cut;
      os << "\n";
    };
    line("placed", r.placed);
    line("round-robin", r.robin);
  }
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv, "place the experts of each MoE layer on devices\n");

  if (numDevices < 1 || numDevices > kMaxExperts)
    return fail("expected --devices from 1 to " + Twine(kMaxExperts) +
                ", found " + Twine(numDevices));
  if (!std::isfinite(imbalance) || imbalance < 0)
    return fail("expected --imbalance >= 0, found " + ratio(imbalance));
  if (maxExpertsOption.getNumOccurrences() &&
      (maxExpertsOption < 1 || maxExpertsOption > kMaxExperts))
    return fail("expected --max-experts-per-device from 1 to " +
                Twine(kMaxExperts) + ", found " + Twine(maxExpertsOption));

  auto buffer = llvm::MemoryBuffer::getFileOrSTDIN(inputFile);
  if (!buffer)
    return fail(inputFile + ": cannot read: " + buffer.getError().message());
  llvm::Expected<json::Value> root = json::parse((*buffer)->getBuffer());
  if (!root)
    return fail(inputFile + ": not JSON: " + llvm::toString(root.takeError()));
  llvm::Expected<std::vector<Layer>> layers =
      SnapshotReader(inputFile).read(*root);
  if (!layers)
    return fail(llvm::toString(layers.takeError()));

  PlacementOptions options;
  options.numDevices = numDevices;
  options.maxExpertsPerDevice = maxExpertsOption;
  options.imbalance = imbalance;
  std::vector<LayerResult> results;
  for (size_t i = 0; i < layers->size(); ++i) {
    const Layer &layer = (*layers)[i];
    unsigned numExperts = layer.stats.loads.size();
    std::string problem = checkOptions(numExperts, options);
    if (!problem.empty())
      return fail(inputFile + ": layers[" + Twine(i) + "] (" + layer.function +
                  "): " + problem);
    int64_t total = 0;
    for (int64_t load : layer.stats.loads)
      total += load;
    results.push_back({&layer, maxExpertsPerDevice(numExperts, options),
                       loadBound(total, options.numDevices, imbalance),
                       place(layer.stats, options),
                       roundRobin(layer.stats, options.numDevices)});
  }

  if (!outputFile.empty()) {
    std::error_code ec;
    llvm::ToolOutputFile out(outputFile, ec, llvm::sys::fs::OF_Text);
    if (ec)
      return fail(outputFile + ": cannot write: " + ec.message());
    writePlacement(out.os(), results);
    out.keep();
    if (outputFile == "-")
      return 0;
  }
  printSummary(llvm::outs(), results);
  return 0;
}
