//===- moe-stats-report.cpp - expert-load statistics as an HTML page ------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
//   moe-stats-report INPUT... -o report.html [--title TEXT]
//
// Reads statistics snapshots (docs/monitoring.md, "File formats"): one
// snapshot file, a JSON Lines history, or several snapshot files in time
// order, and writes one self-contained page: a table of the metrics of the
// last snapshot, a heatmap of the load of every expert, the imbalance of
// every interval between snapshots, and the dropped assignments per expert.
// The page is well-formed XML (inline CSS and SVG, no scripts), so an XML
// parser can check it as well as a browser can show it.
//
// Metrics are computed from the counters; the derived fields of the input
// are not read. Input is validated strictly, and every message names the
// file and line of the offending value.
//
//===----------------------------------------------------------------------===//

#include "LoadMetrics.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using llvm::StringRef;
using llvm::Twine;
namespace cl = llvm::cl;
namespace json = llvm::json;

static cl::OptionCategory category("moe-stats-report options");

static cl::list<std::string>
    inputFiles(cl::Positional, cl::OneOrMore,
               cl::desc("<snapshot file | history file | snapshot files in "
                        "time order>"),
               cl::cat(category));
static cl::opt<std::string> outputFile("o", cl::desc("Output HTML file"),
                                       cl::value_desc("filename"), cl::Required,
                                       cl::cat(category));
static cl::opt<std::string> pageTitle("title", cl::desc("Title of the page"),
                                      cl::init("MoE expert load report"),
                                      cl::cat(category));

static llvm::Error makeError(const Twine &message) {
  return llvm::make_error<llvm::StringError>(message,
                                             llvm::inconvertibleErrorCode());
}

static std::string formatFixed(double value, int digits) {
  if (value == 0)
    value = 0; // never print "-0.0000"
  std::string text;
  llvm::raw_string_ostream(text) << llvm::format("%.*f", digits, value);
  return text;
}

static std::string fixed4(double value) { return formatFixed(value, 4); }
static std::string fixed2(double value) { return formatFixed(value, 2); }

//===----------------------------------------------------------------------===//
// Locations in the input
//===----------------------------------------------------------------------===//

namespace {
/// A JSON document of an input: a whole snapshot file or one line of a
/// history. Its text stays at hand so that a message can name a line.
struct Document {
  std::string file;
  StringRef text;
  unsigned firstLine = 1;
};

/// One step of a path into a document: an object key or an array index.
struct PathStep {
  std::string key; // empty for an index: the format has no empty keys
  size_t index = 0;
};
using JsonPath = std::vector<PathStep>;

/// Finds where the value at a path starts in the text of a document that
/// already parsed, or, when the path leads nowhere, the innermost container
/// it reaches.
class Locator {
public:
  explicit Locator(StringRef text) : text(text) {}
  size_t find(const JsonPath &path);

private:
  StringRef text;
  size_t pos = 0;

  char peek() const { return pos < text.size() ? text[pos] : '\0'; }
  void skipSpace() {
    while (pos < text.size() && StringRef(" \t\r\n").contains(text[pos]))
      ++pos;
  }
  void skipString();
  void skipValue();
  bool enterKey(StringRef name);
  bool enterIndex(size_t index);
};
} // namespace

static PathStep key(StringRef name) { return {name.str(), 0}; }
static PathStep at(size_t index) { return {"", index}; }

void Locator::skipString() {
  ++pos; // the opening quote
  while (pos < text.size() && text[pos] != '"')
    pos += text[pos] == '\\' ? 2 : 1;
  pos = std::min(pos + 1, text.size());
}

void Locator::skipValue() {
  skipSpace();
  char c = peek();
  if (c == '"')
    return skipString();
  if (c != '{' && c != '[') {
    while (pos < text.size() && !StringRef(",]} \t\r\n").contains(text[pos]))
      ++pos;
    return;
  }
  int depth = 0;
  while (pos < text.size()) {
    c = text[pos];
    if (c == '"') {
      skipString();
      continue;
    }
    ++pos;
    if (c == '{' || c == '[')
      ++depth;
    else if ((c == '}' || c == ']') && --depth == 0)
      return;
  }
}

bool Locator::enterKey(StringRef name) {
  ++pos; // '{'
  while (true) {
    skipSpace();
    if (peek() != '"')
      return false;
    size_t start = pos + 1;
    skipString();
    StringRef found = text.slice(start, pos - 1);
    skipSpace();
    if (peek() != ':')
      return false;
    ++pos;
    skipSpace();
    if (found == name)
      return true;
    skipValue();
    skipSpace();
    if (peek() != ',')
      return false;
    ++pos;
  }
}

bool Locator::enterIndex(size_t index) {
  ++pos; // '['
  for (size_t i = 0;; ++i) {
    skipSpace();
    if (peek() == ']' || pos >= text.size())
      return false;
    if (i == index)
      return true;
    skipValue();
    skipSpace();
    if (peek() != ',')
      return false;
    ++pos;
  }
}

size_t Locator::find(const JsonPath &path) {
  pos = 0;
  skipSpace();
  for (const PathStep &step : path) {
    size_t container = pos;
    bool found = step.key.empty() ? peek() == '[' && enterIndex(step.index)
                                  : peek() == '{' && enterKey(step.key);
    if (!found)
      return container;
  }
  return pos;
}

static unsigned lineOf(const Document &doc, const JsonPath &path) {
  size_t offset = Locator(doc.text).find(path);
  return doc.firstLine + doc.text.take_front(offset).count('\n');
}

static std::string pathString(const JsonPath &path) {
  std::string text;
  for (const PathStep &step : path) {
    if (step.key.empty())
      text += "[" + std::to_string(step.index) + "]";
    else
      text += (text.empty() ? "" : ".") + step.key;
  }
  return text;
}

static llvm::Error errorAt(const Document &doc, const JsonPath &path,
                           const Twine &message) {
  std::string where = pathString(path);
  if (!where.empty())
    where += ": ";
  return makeError(Twine(doc.file) + ":" + Twine(lineOf(doc, path)) + ": " +
                   where + message);
}

/// A value as a message shows it: scalars as written, containers by size.
static std::string describe(const json::Value &value) {
  if (const json::Array *array = value.getAsArray())
    return "an array of " + std::to_string(array->size()) +
           (array->size() == 1 ? " element" : " elements");
  if (value.getAsObject())
    return "an object";
  std::string text;
  llvm::raw_string_ostream(text) << value;
  if (text.size() > 40) {
    size_t cut = 37;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
      --cut; // keep UTF-8 sequences whole
    text = text.substr(0, cut) + "...";
  }
  return text;
}

//===----------------------------------------------------------------------===//
// Reading snapshots
//===----------------------------------------------------------------------===//

namespace {
/// The counters of one layer in one snapshot.
struct LayerCounts {
  int64_t calls = 0;
  int64_t tokens = 0;
  std::vector<int64_t> assignments;
  std::vector<int64_t> dropped;
};

/// A layer entry of a snapshot; `index` is its position in "layers".
struct LayerEntry {
  std::string function;
  int64_t numExperts = 0;
  size_t index = 0;
  LayerCounts counts;
};

struct Snapshot {
  Document doc;
  std::vector<LayerEntry> layers;
};

/// Validates one snapshot document while keeping the path of the value it
/// looks at, so that a message can say where the problem is.
class SnapshotReader {
public:
  explicit SnapshotReader(const Document &doc) : doc(doc) {}
  llvm::Expected<Snapshot> read(const json::Value &root);

private:
  /// Adds a step to the path for the lifetime of the scope.
  struct Scope {
    Scope(JsonPath &path, PathStep step) : path(path) {
      path.push_back(std::move(step));
    }
    ~Scope() { path.pop_back(); }
    JsonPath &path;
  };

  const Document &doc;
  JsonPath path;

  llvm::Error fail(const Twine &message) { return errorAt(doc, path, message); }
  llvm::Expected<const json::Value *> field(const json::Object &object,
                                            StringRef name);
  llvm::Error readCount(const json::Value &value, int64_t &count);
  llvm::Error readCount(const json::Object &object, StringRef name,
                        int64_t &count);
  llvm::Error readCounts(const json::Object &object, StringRef name,
                         int64_t size, std::vector<int64_t> &counts);
  llvm::Error readCoactivation(const json::Value &value, int64_t numExperts);
  llvm::Error readLayer(const json::Value &value, LayerEntry &layer);
};
} // namespace

llvm::Expected<const json::Value *>
SnapshotReader::field(const json::Object &object, StringRef name) {
  if (const json::Value *value = object.get(name))
    return value;
  return fail("expected field \"" + name + "\", found none");
}

llvm::Error SnapshotReader::readCount(const json::Value &value,
                                      int64_t &count) {
  std::optional<int64_t> number = value.getAsInteger();
  if (!number || *number < 0)
    return fail("expected a non-negative integer, found " + describe(value));
  count = *number;
  return llvm::Error::success();
}

llvm::Error SnapshotReader::readCount(const json::Object &object,
                                      StringRef name, int64_t &count) {
  llvm::Expected<const json::Value *> value = field(object, name);
  if (!value)
    return value.takeError();
  Scope scope(path, key(name));
  return readCount(**value, count);
}

llvm::Error SnapshotReader::readCounts(const json::Object &object,
                                       StringRef name, int64_t size,
                                       std::vector<int64_t> &counts) {
  llvm::Expected<const json::Value *> value = field(object, name);
  if (!value)
    return value.takeError();
  Scope scope(path, key(name));
  const json::Array *array = (*value)->getAsArray();
  if (!array || static_cast<int64_t>(array->size()) != size)
    return fail("expected an array of " + Twine(size) +
                " counts (num_experts), found " + describe(**value));
  counts.resize(size);
  for (auto [e, element] : llvm::enumerate(*array)) {
    Scope item(path, at(e));
    if (llvm::Error err = readCount(element, counts[e]))
      return err;
  }
  return llvm::Error::success();
}

llvm::Error SnapshotReader::readCoactivation(const json::Value &value,
                                             int64_t numExperts) {
  const json::Array *pairs = value.getAsArray();
  if (!pairs)
    return fail("expected an array of [i, j, count], found " + describe(value));
  for (auto [p, pair] : llvm::enumerate(*pairs)) {
    Scope item(path, at(p));
    const json::Array *triple = pair.getAsArray();
    std::optional<int64_t> i, j, count;
    if (triple && triple->size() == 3) {
      i = (*triple)[0].getAsInteger();
      j = (*triple)[1].getAsInteger();
      count = (*triple)[2].getAsInteger();
    }
    if (!i || !j || !count || *i < 0 || *i >= *j || *j >= numExperts ||
        *count <= 0) {
      std::string found;
      llvm::raw_string_ostream(found) << pair;
      if (found.size() > 40)
        found = describe(pair);
      return fail("expected [i, j, count] with 0 <= i < j < " +
                  Twine(numExperts) + " and count > 0, found " + found);
    }
  }
  return llvm::Error::success();
}

llvm::Error SnapshotReader::readLayer(const json::Value &value,
                                      LayerEntry &layer) {
  const json::Object *object = value.getAsObject();
  if (!object)
    return fail("expected an object (a layer), found " + describe(value));
  llvm::Expected<const json::Value *> function = field(*object, "function");
  if (!function)
    return function.takeError();
  {
    Scope scope(path, key("function"));
    std::optional<StringRef> name = (*function)->getAsString();
    if (!name || name->empty())
      return fail("expected a function name, found " + describe(**function));
    layer.function = name->str();
  }
  if (llvm::Error err = readCount(*object, "num_experts", layer.numExperts))
    return err;
  if (layer.numExperts == 0) {
    Scope scope(path, key("num_experts"));
    return fail("expected a positive integer, found 0");
  }
  LayerCounts &counts = layer.counts;
  if (llvm::Error err = readCount(*object, "calls", counts.calls))
    return err;
  if (llvm::Error err = readCount(*object, "tokens", counts.tokens))
    return err;
  if (llvm::Error err = readCounts(*object, "assignments", layer.numExperts,
                                   counts.assignments))
    return err;
  if (llvm::Error err =
          readCounts(*object, "dropped", layer.numExperts, counts.dropped))
    return err;
  for (int64_t e = 0; e < layer.numExperts; ++e) {
    if (counts.dropped[e] <= counts.assignments[e])
      continue;
    Scope scope(path, key("dropped"));
    Scope item(path, at(e));
    return fail("expected at most assignments[" + Twine(e) +
                "] = " + Twine(counts.assignments[e]) + ", found " +
                Twine(counts.dropped[e]));
  }
  if (const json::Value *coactivation = object->get("coactivation")) {
    Scope scope(path, key("coactivation"));
    return readCoactivation(*coactivation, layer.numExperts);
  }
  return llvm::Error::success();
}

llvm::Expected<Snapshot> SnapshotReader::read(const json::Value &root) {
  const json::Object *object = root.getAsObject();
  if (!object)
    return fail("expected an object (a statistics snapshot), found " +
                describe(root));
  llvm::Expected<const json::Value *> version = field(*object, "version");
  if (!version)
    return version.takeError();
  if ((*version)->getAsInteger() != std::optional<int64_t>(1)) {
    Scope scope(path, key("version"));
    return fail("expected 1, found " + describe(**version));
  }
  llvm::Expected<const json::Value *> layers = field(*object, "layers");
  if (!layers)
    return layers.takeError();
  Scope scope(path, key("layers"));
  const json::Array *array = (*layers)->getAsArray();
  if (!array)
    return fail("expected an array of layers, found " + describe(**layers));

  Snapshot snapshot{doc, {}};
  llvm::StringMap<size_t> seen;
  for (auto [i, value] : llvm::enumerate(*array)) {
    Scope item(path, at(i));
    LayerEntry &layer = snapshot.layers.emplace_back();
    layer.index = i;
    if (llvm::Error err = readLayer(value, layer))
      return std::move(err);
    auto [it, inserted] = seen.try_emplace(layer.function, i);
    if (!inserted) {
      Scope name(path, key("function"));
      return fail("expected a layer not listed before, found \"" +
                  layer.function + "\" again (also layers[" +
                  Twine(it->second) + "])");
    }
  }
  return std::move(snapshot);
}

/// Reports a syntax error of llvm::json ("[LINE:COLUMN, byte=N]: MESSAGE",
/// where COLUMN counts from 1 up to the offending character) at the line of
/// the file it is on.
static llvm::Error syntaxError(const Document &doc, llvm::Error error) {
  std::string message = llvm::toString(std::move(error));
  llvm::Regex pattern("^\\[([0-9]+):([0-9]+), byte=[0-9]+\\]: (.*)$");
  llvm::SmallVector<StringRef, 4> match;
  unsigned line = 0, column = 0;
  if (!pattern.match(message, &match) || match[1].getAsInteger(10, line) ||
      match[2].getAsInteger(10, column) || line == 0)
    return makeError(Twine(doc.file) + ":" + Twine(doc.firstLine) +
                     ": expected valid JSON, found " + message);
  return makeError(Twine(doc.file) + ":" + Twine(doc.firstLine + line - 1) +
                   ": expected valid JSON, found a syntax error at column " +
                   Twine(column) + " (" + match[3] + ")");
}

static llvm::Error readSnapshot(const Document &doc, const json::Value &root,
                                std::vector<Snapshot> &snapshots) {
  llvm::Expected<Snapshot> snapshot = SnapshotReader(doc).read(root);
  if (!snapshot)
    return snapshot.takeError();
  snapshots.push_back(std::move(*snapshot));
  return llvm::Error::success();
}

/// Reads a snapshot file or a history. A file that is not one JSON document
/// but whose first line is one is a history: one snapshot a line.
static llvm::Error
readFile(StringRef file,
         std::vector<std::unique_ptr<llvm::MemoryBuffer>> &buffers,
         std::vector<Snapshot> &snapshots) {
  std::string name = file == "-" ? "<stdin>" : file.str();
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFileOrSTDIN(file);
  if (!buffer)
    return makeError(name + ": cannot read: " + buffer.getError().message());
  StringRef text = (*buffer)->getBuffer();
  buffers.push_back(std::move(*buffer));
  text.consume_front("\xEF\xBB\xBF");
  if (text.trim().empty())
    return makeError(name +
                     ":1: expected a statistics snapshot, found an empty file");

  Document whole{name, text, 1};
  llvm::Expected<json::Value> parsed = json::parse(text);
  if (parsed)
    return readSnapshot(whole, *parsed, snapshots);

  llvm::SmallVector<StringRef> lines;
  text.split(lines, '\n');
  const StringRef *first =
      llvm::find_if(lines, [](StringRef line) { return !line.trim().empty(); });
  llvm::Expected<json::Value> firstValue = json::parse(*first);
  if (!firstValue) {
    llvm::consumeError(firstValue.takeError());
    return syntaxError(whole, parsed.takeError());
  }
  llvm::consumeError(parsed.takeError());
  for (auto [i, line] : llvm::enumerate(lines)) {
    if (line.trim().empty())
      continue;
    Document doc{name, line, static_cast<unsigned>(i + 1)};
    llvm::Expected<json::Value> root = json::parse(line);
    if (!root)
      return syntaxError(doc, root.takeError());
    if (llvm::Error err = readSnapshot(doc, *root, snapshots))
      return err;
  }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Layers over time
//===----------------------------------------------------------------------===//

namespace {
/// The counters of one layer in every snapshot, zero before it appears.
struct LayerSeries {
  std::string function;
  int64_t numExperts = 0;
  std::vector<LayerCounts> counts;
  size_t lastEntry = 0; // its index in the layers of the latest snapshot
};
} // namespace

/// Checks that the counters of a layer did not decrease between two
/// consecutive snapshots.
static llvm::Error checkCumulative(const Snapshot &before,
                                   const LayerEntry &was, const Snapshot &now,
                                   const LayerEntry &is) {
  auto previous = [&](const JsonPath &path) {
    JsonPath full = {key("layers"), at(was.index)};
    full.insert(full.end(), path.begin(), path.end());
    return before.doc.file + ":" + std::to_string(lineOf(before.doc, full));
  };
  auto fail = [&](const JsonPath &path, const Twine &message) {
    JsonPath full = {key("layers"), at(is.index)};
    full.insert(full.end(), path.begin(), path.end());
    return errorAt(now.doc, full, message);
  };
  if (is.numExperts != was.numExperts)
    return fail({key("num_experts")}, "expected " + Twine(was.numExperts) +
                                          " as in the previous snapshot (" +
                                          previous({key("num_experts")}) +
                                          "), found " + Twine(is.numExperts));
  auto check = [&](const JsonPath &path, int64_t old,
                   int64_t current) -> llvm::Error {
    if (current >= old)
      return llvm::Error::success();
    return fail(path, "expected at least " + Twine(old) +
                          " as in the previous snapshot (" + previous(path) +
                          "): counters are cumulative, found " +
                          Twine(current));
  };
  if (llvm::Error err =
          check({key("calls")}, was.counts.calls, is.counts.calls))
    return err;
  if (llvm::Error err =
          check({key("tokens")}, was.counts.tokens, is.counts.tokens))
    return err;
  for (int64_t e = 0; e < is.numExperts; ++e) {
    if (llvm::Error err =
            check({key("assignments"), at(e)}, was.counts.assignments[e],
                  is.counts.assignments[e]))
      return err;
    if (llvm::Error err = check({key("dropped"), at(e)}, was.counts.dropped[e],
                                is.counts.dropped[e]))
      return err;
  }
  return llvm::Error::success();
}

static llvm::Expected<std::vector<LayerSeries>>
buildSeries(const std::vector<Snapshot> &snapshots) {
  std::vector<LayerSeries> series;
  llvm::StringMap<size_t> indexOf;
  for (auto [s, snapshot] : llvm::enumerate(snapshots)) {
    for (const LayerEntry &entry : snapshot.layers) {
      auto [it, inserted] = indexOf.try_emplace(entry.function, series.size());
      if (inserted) {
        LayerSeries &layer = series.emplace_back();
        layer.function = entry.function;
        layer.numExperts = entry.numExperts;
        LayerCounts zero;
        zero.assignments.assign(entry.numExperts, 0);
        zero.dropped.assign(entry.numExperts, 0);
        layer.counts.assign(s, zero);
      } else {
        LayerSeries &layer = series[it->second];
        const Snapshot &before = snapshots[s - 1];
        if (llvm::Error err = checkCumulative(
                before, before.layers[layer.lastEntry], snapshot, entry))
          return std::move(err);
      }
      LayerSeries &layer = series[it->second];
      layer.counts.push_back(entry.counts);
      layer.lastEntry = entry.index;
    }
    for (const LayerSeries &layer : series)
      if (layer.counts.size() != s + 1)
        return errorAt(snapshot.doc, {key("layers")},
                       "expected layer \"" + layer.function +
                           "\" as in the previous snapshot, found none");
  }
  return std::move(series);
}

//===----------------------------------------------------------------------===//
// Metrics (docs/monitoring.md, "Metrics")
//===----------------------------------------------------------------------===//

using Metrics = ::moe::rt::LoadMetrics;

static double sum(const std::vector<int64_t> &values) {
  double total = 0;
  for (int64_t value : values)
    total += static_cast<double>(value);
  return total;
}

static Metrics computeMetrics(const LayerCounts &counts) {
  return ::moe::rt::computeMetrics(counts.assignments, counts.dropped,
                                   counts.tokens);
}

//===----------------------------------------------------------------------===//
// The page
//===----------------------------------------------------------------------===//

/// Escapes text for XML content and double-quoted attributes. Characters
/// that XML 1.0 cannot hold at all become U+FFFD.
static std::string escape(StringRef text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = text[i];
    switch (c) {
    case '&':
      out += "&amp;";
      continue;
    case '<':
      out += "&lt;";
      continue;
    case '>':
      out += "&gt;";
      continue;
    case '"':
      out += "&quot;";
      continue;
    case '\t':
    case '\n':
    case '\r':
      // As references, so that attribute values keep them.
      out += "&#" + std::to_string(c) + ";";
      continue;
    }
    StringRef rest = text.substr(i);
    if (c < 0x20) {
      out += "\xEF\xBF\xBD";
    } else if (rest.starts_with("\xEF\xBF\xBE") ||
               rest.starts_with("\xEF\xBF\xBF")) {
      out += "\xEF\xBF\xBD";
      i += 2;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

/// A layer name for a chart label: at most `limit` characters.
static std::string shortName(StringRef name, size_t limit = 40) {
  size_t chars = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    if ((static_cast<unsigned char>(name[i]) & 0xC0) == 0x80)
      continue;
    if (++chars > limit)
      return (name.take_front(i) + "\xE2\x80\xA6").str(); // ellipsis
  }
  return name.str();
}

static size_t labelChars(StringRef name) {
  size_t chars = 0;
  for (char c : shortName(name))
    chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return chars;
}

static std::string rgb(double r, double g, double b) {
  std::string text;
  llvm::raw_string_ostream(text) << llvm::format(
      "#%02x%02x%02x", static_cast<int>(std::lround(r)),
      static_cast<int>(std::lround(g)), static_cast<int>(std::lround(b)));
  return text;
}

/// Diverging scale on log2 of the load ratio: blue at a quarter of the even
/// share or less, white at the even share, red at four times or more.
static std::string loadColor(double ratio) {
  double t = ratio <= 0 ? -1.0 : std::clamp(std::log2(ratio) / 2, -1.0, 1.0);
  static const double blue[3] = {33, 102, 172}, red[3] = {178, 24, 43};
  const double *end = t < 0 ? blue : red;
  double w = std::fabs(t);
  return rgb(255 + (end[0] - 255) * w, 255 + (end[1] - 255) * w,
             255 + (end[2] - 255) * w);
}

static const char *const seriesColors[] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/// The smallest of 1, 2, 2.5, 5 times a power of ten that is >= value.
static double niceStep(double value) {
  if (value <= 0)
    return 1;
  double power = std::pow(10.0, std::floor(std::log10(value)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * power >= value * (1 - 1e-12))
      return m * power;
  return 10 * power;
}

/// Label every `step`-th expert, so that labels are at least 28px apart.
static int64_t labelStep(double cellWidth) {
  int64_t step = 1;
  while (step * cellWidth < 28)
    step *= 2;
  return step;
}

namespace {
/// What the page shows of one layer.
struct LayerReport {
  const LayerSeries *series;
  Metrics metrics;                   // of the last snapshot
  std::vector<double> intervalRatio; // max_load_ratio of every interval

  StringRef name() const { return series->function; }
  const LayerCounts &last() const { return series->counts.back(); }
};

class PageWriter {
public:
  PageWriter(llvm::raw_ostream &os, const std::vector<LayerReport> &layers,
             size_t snapshots)
      : os(os), layers(layers), snapshots(snapshots) {}
  void write(StringRef title);

private:
  llvm::raw_ostream &os;
  const std::vector<LayerReport> &layers;
  size_t snapshots;

  void writeSummary();
  void writeHeatmap();
  void writeLegend(double x, double y);
  void writeImbalance();
  void writeDrops();
  void writeDropChart(const LayerReport &layer);
};
} // namespace

static const char *const styleSheet =
    R"(body { font-family: sans-serif; margin: 24px; color: #222; }
h2 { margin-top: 32px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; }
th:first-child, td:first-child { text-align: left; }
.chart { overflow-x: auto; }
svg text { font-size: 11px; fill: #333; }
svg .axis { stroke: #888; stroke-width: 1; }
svg .grid { stroke: #e4e4e4; stroke-width: 1; }
svg .even { stroke: #888; stroke-dasharray: 4 3; }
svg .cell { stroke: #fff; stroke-width: 0.5; }
svg .row { fill: none; stroke: #bbb; stroke-width: 1; }
svg .series { fill: none; stroke-width: 1.5; }
svg .bar { fill: #b2182b; }
)";

void PageWriter::write(StringRef title) {
  os << "<!DOCTYPE html>\n"
     << "<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n"
     << "<head>\n<meta charset=\"utf-8\"/>\n<title>" << escape(title)
     << "</title>\n<style>\n"
     << styleSheet << "</style>\n</head>\n<body>\n<h1>" << escape(title)
     << "</h1>\n<p>" << snapshots
     << (snapshots == 1 ? " snapshot, " : " snapshots, ") << layers.size()
     << (layers.size() == 1 ? " layer" : " layers")
     << ". Counters are cumulative: the table, the heatmap and the drop "
        "counts show the last snapshot; interval i is snapshot i minus "
        "snapshot i - 1.</p>\n";
  writeSummary();
  writeHeatmap();
  writeImbalance();
  writeDrops();
  os << "</body>\n</html>\n";
}

void PageWriter::writeSummary() {
  os << "<h2 id=\"summary\">Summary</h2>\n<table>\n<thead>\n<tr>";
  for (StringRef heading : {"function", "experts", "calls", "tokens",
                            "mean experts/token", "max load ratio", "CV",
                            "normalized entropy", "Jain's index", "drop rate"})
    os << "<th>" << escape(heading) << "</th>";
  os << "</tr>\n</thead>\n<tbody>\n";
  for (const LayerReport &layer : layers) {
    const Metrics &m = layer.metrics;
    os << "<tr data-layer=\"" << escape(layer.name()) << "\"><td>"
       << escape(layer.name()) << "</td><td>" << layer.series->numExperts
       << "</td><td>" << layer.last().calls << "</td><td>"
       << layer.last().tokens << "</td>";
    for (double value : {m.meanExpertsPerToken, m.maxLoadRatio, m.loadCV,
                         m.normalizedEntropy, m.jainFairness, m.dropRate})
      os << "<td>" << fixed4(value) << "</td>";
    os << "</tr>\n";
  }
  os << "</tbody>\n</table>\n";
}

void PageWriter::writeLegend(double x, double y) {
  os << "<text x=\"" << fixed2(x) << "\" y=\"" << fixed2(y + 10)
     << "\">assignments relative to the even share (A / E)</text>\n";
  const double width = 24;
  for (int k = -4; k <= 4; ++k) {
    double ratio = std::exp2(k / 2.0);
    double left = x + (k + 4) * width;
    os << "<rect x=\"" << fixed2(left) << "\" y=\"" << fixed2(y + 16)
       << "\" width=\"" << fixed2(width) << "\" height=\"12\" fill=\""
       << loadColor(ratio) << "\" stroke=\"#ccc\" stroke-width=\"0.5\"/>\n";
    if (k % 2 != 0)
      continue;
    static const char *const labels[] = {"\xE2\x89\xA4"
                                         "0.25",
                                         "0.5", "1", "2",
                                         "\xE2\x89\xA5"
                                         "4"};
    StringRef label = labels[(k + 4) / 2];
    os << "<text x=\"" << fixed2(left + width / 2) << "\" y=\""
       << fixed2(y + 42) << "\" text-anchor=\"middle\">" << label
       << "</text>\n";
  }
}

void PageWriter::writeHeatmap() {
  os << "<h2 id=\"heatmap\">Expert load</h2>\n";
  int64_t maxExperts = 1;
  size_t maxChars = 4;
  for (const LayerReport &layer : layers) {
    maxExperts = std::max(maxExperts, layer.series->numExperts);
    maxChars = std::max(maxChars, labelChars(layer.name()));
  }
  // Cells shrink so that the grid stays within about 960px, down to 3px.
  const double cell = std::clamp<double>(std::floor(960.0 / maxExperts), 3, 28);
  const double rowHeight = 20, top = 18;
  const double labelWidth = 12 + 7 * static_cast<double>(maxChars);
  const double gridBottom = top + rowHeight * layers.size();
  const double width =
      std::max(labelWidth + cell * maxExperts + 10, labelWidth + 300);
  const double height = gridBottom + 64;
  os << "<div class=\"chart\">\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
     << "id=\"heatmap-chart\" width=\"" << fixed2(width) << "\" height=\""
     << fixed2(height) << "\" viewBox=\"0 0 " << fixed2(width) << " "
     << fixed2(height) << "\">\n";

  int64_t step = labelStep(cell);
  for (int64_t e = 0; e < maxExperts; e += step)
    os << "<text x=\"" << fixed2(labelWidth + (e + 0.5) * cell)
       << "\" y=\"12\" text-anchor=\"middle\">" << e << "</text>\n";

  for (auto [row, layer] : llvm::enumerate(layers)) {
    const LayerCounts &counts = layer.last();
    double y = top + rowHeight * row;
    double mean = sum(counts.assignments) / layer.series->numExperts;
    os << "<text x=\"" << fixed2(labelWidth - 6) << "\" y=\"" << fixed2(y + 14)
       << "\" text-anchor=\"end\"><title>" << escape(layer.name()) << "</title>"
       << escape(shortName(layer.name())) << "</text>\n";
    for (int64_t e = 0; e < layer.series->numExperts; ++e) {
      int64_t load = counts.assignments[e];
      double ratio = mean > 0 ? load / mean : 0;
      os << "<rect class=\"cell\" x=\"" << fixed2(labelWidth + e * cell)
         << "\" y=\"" << fixed2(y) << "\" width=\"" << fixed2(cell)
         << "\" height=\"" << fixed2(rowHeight) << "\" fill=\""
         << (mean > 0 ? loadColor(ratio) : "#cccccc") << "\" data-layer=\""
         << escape(layer.name()) << "\" data-expert=\"" << e
         << "\" data-assignments=\"" << load << "\"><title>"
         << escape(layer.name()) << ", expert " << e << ": " << load
         << " assignments, " << counts.dropped[e] << " dropped, load ratio "
         << fixed4(ratio) << "</title></rect>\n";
    }
    // Drawn over the cells, the outline keeps the cells at the even share
    // (white) visible.
    os << "<rect class=\"row\" x=\"" << fixed2(labelWidth) << "\" y=\""
       << fixed2(y) << "\" width=\"" << fixed2(cell * layer.series->numExperts)
       << "\" height=\"" << fixed2(rowHeight) << "\"/>\n";
  }
  writeLegend(labelWidth, gridBottom + 8);
  os << "</svg>\n</div>\n";
}

void PageWriter::writeImbalance() {
  os << "<h2 id=\"imbalance\">Imbalance over time</h2>\n";
  if (snapshots < 2) {
    os << "<p class=\"no-history\">The imbalance over time needs a history: "
          "give a statistics history (moe-run --stats-history) or several "
          "snapshots in time order.</p>\n";
    return;
  }
  os << "<p>max_load_ratio of every interval (max load over mean load of "
        "the assignments between two snapshots; 1 is perfectly even, 0 an "
        "interval without assignments).</p>\n";

  double maxRatio = 1;
  size_t maxChars = 4;
  for (const LayerReport &layer : layers) {
    for (double ratio : layer.intervalRatio)
      maxRatio = std::max(maxRatio, ratio);
    maxChars = std::max(maxChars, labelChars(layer.name()));
  }
  const double left = 50, top = 24, plotWidth = 720, plotHeight = 240;
  const double yStep = niceStep(maxRatio * 1.05 / 5);
  const double yMax = std::ceil(maxRatio * 1.05 / yStep - 1e-9) * yStep;
  const double plotBottom = top + plotHeight;
  const double legendTop = plotBottom + 44;
  const double width =
      std::max(left + plotWidth + 20, left + 30 + 7.0 * maxChars);
  const double height = legendTop + 18 * layers.size() + 6;
  const size_t intervals = snapshots;
  auto xOf = [&](size_t i) {
    return left + plotWidth * i / static_cast<double>(intervals - 1);
  };
  auto yOf = [&](double ratio) {
    return plotBottom - plotHeight * ratio / yMax;
  };

  os << "<div class=\"chart\">\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
     << "id=\"imbalance-chart\" width=\"" << fixed2(width) << "\" height=\""
     << fixed2(height) << "\" viewBox=\"0 0 " << fixed2(width) << " "
     << fixed2(height) << "\">\n";
  os << "<text x=\"" << fixed2(left)
     << "\" y=\"12\">max load / mean load</text>\n";
  int digits = yStep < 1 ? (yStep == 0.25 ? 2 : 1) : 0;
  for (double tick = 0; tick <= yMax + yStep / 2; tick += yStep) {
    double y = yOf(tick);
    os << "<line class=\"grid\" x1=\"" << fixed2(left) << "\" y1=\""
       << fixed2(y) << "\" x2=\"" << fixed2(left + plotWidth) << "\" y2=\""
       << fixed2(y) << "\"/>\n<text x=\"" << fixed2(left - 6) << "\" y=\""
       << fixed2(y + 4) << "\" text-anchor=\"end\">"
       << formatFixed(tick, digits) << "</text>\n";
  }
  os << "<line class=\"even\" x1=\"" << fixed2(left) << "\" y1=\""
     << fixed2(yOf(1)) << "\" x2=\"" << fixed2(left + plotWidth) << "\" y2=\""
     << fixed2(yOf(1)) << "\"/>\n";
  os << "<line class=\"axis\" x1=\"" << fixed2(left) << "\" y1=\""
     << fixed2(plotBottom) << "\" x2=\"" << fixed2(left + plotWidth)
     << "\" y2=\"" << fixed2(plotBottom) << "\"/>\n";
  size_t xStep = static_cast<size_t>(niceStep((intervals - 1) / 10.0));
  xStep = std::max<size_t>(xStep, 1);
  for (size_t i = 0; i < intervals; i += xStep)
    os << "<text x=\"" << fixed2(xOf(i)) << "\" y=\"" << fixed2(plotBottom + 16)
       << "\" text-anchor=\"middle\">" << i << "</text>\n";
  os << "<text x=\"" << fixed2(left + plotWidth / 2) << "\" y=\""
     << fixed2(plotBottom + 32)
     << "\" text-anchor=\"middle\">interval</text>\n";

  for (auto [i, layer] : llvm::enumerate(layers)) {
    const char *color = seriesColors[i % std::size(seriesColors)];
    // Colors repeat after ten layers; the dashes tell those apart.
    const char *dash =
        (i / std::size(seriesColors)) % 2 ? " stroke-dasharray=\"6 3\"" : "";
    std::string points, values;
    for (auto [x, ratio] : llvm::enumerate(layer.intervalRatio)) {
      points += (x ? " " : "") + fixed2(xOf(x)) + "," + fixed2(yOf(ratio));
      values += (x ? " " : "") + fixed4(ratio);
    }
    os << "<polyline class=\"series\" stroke=\"" << color << "\"" << dash
       << " data-layer=\"" << escape(layer.name()) << "\" data-values=\""
       << values << "\" points=\"" << points << "\"><title>"
       << escape(layer.name()) << "</title></polyline>\n";
    double y = legendTop + 18 * i;
    os << "<line x1=\"" << fixed2(left) << "\" y1=\"" << fixed2(y) << "\" x2=\""
       << fixed2(left + 20) << "\" y2=\"" << fixed2(y) << "\" stroke=\""
       << color << "\" stroke-width=\"2\"" << dash << "/>\n<text x=\""
       << fixed2(left + 26) << "\" y=\"" << fixed2(y + 4) << "\">"
       << escape(shortName(layer.name())) << "</text>\n";
  }
  os << "</svg>\n</div>\n";
}

void PageWriter::writeDropChart(const LayerReport &layer) {
  const LayerCounts &counts = layer.last();
  int64_t experts = layer.series->numExperts;
  int64_t maxDropped = *llvm::max_element(counts.dropped);
  const double bar = std::clamp<double>(std::floor(800.0 / experts), 3, 24);
  const double gap = bar >= 6 ? 1 : 0;
  const double left = 50, top = 24, plotHeight = 120;
  const double plotBottom = top + plotHeight;
  const double width = left + bar * experts + 20, height = plotBottom + 24;
  os << "<div class=\"chart\">\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
     << "width=\"" << fixed2(width) << "\" height=\"" << fixed2(height)
     << "\" viewBox=\"0 0 " << fixed2(width) << " " << fixed2(height)
     << "\">\n";
  os << "<text x=\"" << fixed2(left) << "\" y=\"12\">dropped</text>\n";
  llvm::SmallVector<int64_t, 3> ticks = {0};
  if (maxDropped / 2 > 0 && maxDropped / 2 < maxDropped)
    ticks.push_back(maxDropped / 2);
  ticks.push_back(maxDropped);
  for (int64_t tick : ticks) {
    double y = plotBottom - plotHeight * tick / maxDropped;
    os << "<line class=\"grid\" x1=\"" << fixed2(left) << "\" y1=\""
       << fixed2(y) << "\" x2=\"" << fixed2(left + bar * experts) << "\" y2=\""
       << fixed2(y) << "\"/>\n<text x=\"" << fixed2(left - 6) << "\" y=\""
       << fixed2(y + 4) << "\" text-anchor=\"end\">" << tick << "</text>\n";
  }
  int64_t step = labelStep(bar);
  for (int64_t e = 0; e < experts; ++e) {
    int64_t dropped = counts.dropped[e];
    int64_t assigned = counts.assignments[e];
    double h = plotHeight * dropped / maxDropped;
    double share = assigned ? static_cast<double>(dropped) / assigned : 0;
    os << "<rect class=\"bar\" x=\"" << fixed2(left + e * bar + gap)
       << "\" y=\"" << fixed2(plotBottom - h) << "\" width=\""
       << fixed2(bar - 2 * gap) << "\" height=\"" << fixed2(h)
       << "\" data-layer=\"" << escape(layer.name()) << "\" data-expert=\"" << e
       << "\" data-dropped=\"" << dropped << "\"><title>"
       << escape(layer.name()) << ", expert " << e << ": " << dropped << " of "
       << assigned << " assignments dropped (" << fixed4(share)
       << ")</title></rect>\n";
    if (e % step == 0)
      os << "<text x=\"" << fixed2(left + (e + 0.5) * bar) << "\" y=\""
         << fixed2(plotBottom + 16) << "\" text-anchor=\"middle\">" << e
         << "</text>\n";
  }
  os << "<line class=\"axis\" x1=\"" << fixed2(left) << "\" y1=\""
     << fixed2(plotBottom) << "\" x2=\"" << fixed2(left + bar * experts)
     << "\" y2=\"" << fixed2(plotBottom) << "\"/>\n</svg>\n</div>\n";
}

void PageWriter::writeDrops() {
  os << "<h2 id=\"drops\">Dropped assignments</h2>\n<p>Assignments each "
        "expert dropped for capacity, cumulative to the last snapshot.</p>\n";
  for (const LayerReport &layer : layers) {
    os << "<h3>" << escape(layer.name()) << "</h3>\n";
    double dropped = sum(layer.last().dropped);
    if (dropped == 0) {
      os << "<p class=\"no-drops\">no drops</p>\n";
      continue;
    }
    os << "<p>" << formatFixed(dropped, 0) << " of "
       << formatFixed(sum(layer.last().assignments), 0)
       << " assignments dropped (drop rate " << fixed4(layer.metrics.dropRate)
       << ").</p>\n";
    writeDropChart(layer);
  }
}

static std::vector<LayerReport>
buildReports(const std::vector<LayerSeries> &series) {
  std::vector<LayerReport> reports;
  for (const LayerSeries &layer : series) {
    LayerReport &report = reports.emplace_back();
    report.series = &layer;
    report.metrics = computeMetrics(layer.counts.back());
    std::vector<int64_t> delta(layer.numExperts), noDrops(layer.numExperts);
    for (size_t s = 0; s < layer.counts.size(); ++s) {
      for (int64_t e = 0; e < layer.numExperts; ++e)
        delta[e] = layer.counts[s].assignments[e] -
                   (s ? layer.counts[s - 1].assignments[e] : 0);
      report.intervalRatio.push_back(
          ::moe::rt::computeMetrics(delta, noDrops, 0).maxLoadRatio);
    }
  }
  return reports;
}

static int fail(const Twine &message) {
  llvm::errs() << "moe-stats-report: " << message << "\n";
  return 1;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv, "expert-load statistics as a self-contained HTML page\n");

  std::vector<std::unique_ptr<llvm::MemoryBuffer>> buffers;
  std::vector<Snapshot> snapshots;
  for (const std::string &file : inputFiles)
    if (llvm::Error err = readFile(file, buffers, snapshots))
      return fail(llvm::toString(std::move(err)));
  llvm::Expected<std::vector<LayerSeries>> series = buildSeries(snapshots);
  if (!series)
    return fail(llvm::toString(series.takeError()));
  if (series->empty())
    return fail(llvm::toString(
        errorAt(snapshots.back().doc, {key("layers")},
                "expected at least one layer in the statistics, found none")));
  std::vector<LayerReport> reports = buildReports(*series);

  std::error_code ec;
  llvm::raw_fd_ostream os(outputFile, ec);
  if (ec)
    return fail(outputFile + ": cannot write: " + ec.message());
  PageWriter(os, reports, snapshots.size()).write(pageTitle);
  os.close();
  if (os.has_error()) {
    std::string message = os.error().message();
    os.clear_error();
    return fail(outputFile + ": cannot write: " + message);
  }
  return 0;
}
