//===- Emulator.cpp - a SIMT emulator for kernels run on the host ---------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// libmoe_cuda_emulator: the mgpu* functions of MLIR's GPU host code over host
// memory, and the moe_emu_* functions that code compiled by moe-gpu-emulate
// calls, so that the CUDA back end's kernels execute, and are checked, on a
// machine without a GPU.
//
// A launch runs its blocks one after the other; a block runs one fiber per
// thread, in thread order, each until it waits: at a block
// barrier until every live thread of the block is there, at a warp-wide
// operation (shuffle, match, warp sync, ldmatrix, mma.sync) until every
// lane its mask names is at the same operation. The schedule is fixed, so
// runs are deterministic. The emulator is strict where CUDA leaves things
// undefined and a kernel would be wrong:
//
//   - device memory from mgpuMemAlloc and each block's shared memory start
//     filled with 0xff bytes (a NaN in f32 and bf16, -1 in integers), not
//     zeros, or with the byte MOE_EMU_FILL names (an integer in 0..255),
//     so that a second run shows a kernel reads no fresh memory as if it
//     held -1;
//   - a shuffle from a lane outside the mask reads 0xffffffff;
//   - an access to shared memory outside the kernel's, two threads of a
//     block touching one shared byte (one writing) with no barrier or
//     warp-wide operation ordering them, and an access to any other memory
//     outside the live device allocations are errors;
//   - a launch beyond the device's limits (more than 1024 threads, a grid
//     of more than 65535 in y or z) is an error, as in cuLaunchKernel (an
//     empty grid runs nothing, as in libmoe_cuda_runtime), and so is a
//     deadlock: a lane that exits
//     before a warp-wide operation naming it, lanes of one mask at different
//     operations, a barrier that some threads never reach.
//
// Errors print one line, "moe cuda emulator: ...", and abort, as the
// driver runtime does where no C API catches its failures (here they are
// bugs of a kernel or of the lowering, and are never caught). The cp.async
// copies complete when issued, and their bytes count as in flight (an access to
// them is an error) until a wait of the issuing thread covers their group; the
// emulator does not model timing, caches or memory ordering beyond the program
// order of a fiber and the points where it waits.
//
//===----------------------------------------------------------------------===//

#include "KernelChoices.h"

#include <sys/mman.h>
#include <unistd.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cctype>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#define MOE_EMU_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

[[noreturn]] void fail(const std::string &message) {
  std::fprintf(stderr, "moe cuda emulator: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

/// The byte fresh device memory and shared memory start filled with: 0xff,
/// or MOE_EMU_FILL.
unsigned char fillByte() {
  static const unsigned char byte = [] {
    std::string bad;
    int64_t value =
        moe::rt::cuda::boundedChoice("MOE_EMU_FILL", 0xff, 0, 255, bad);
    if (!bad.empty())
      fail(bad);
    return static_cast<unsigned char>(value);
  }();
  return byte;
}

//===----------------------------------------------------------------------===//
// Fibers
//===----------------------------------------------------------------------===//

// On x86-64 a switch saves the callee-saved registers and the floating-point
// control words on the stack it leaves, and restores them from the stack it
// enters (tens of nanoseconds); elsewhere ucontext, whose switches also save
// the signal mask (a system call each).
#if defined(__x86_64__)
extern "C" void moe_emu_switch(void **from, void *to);
asm(R"(
  .text
  .p2align 4
  .type moe_emu_switch,@function
moe_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size moe_emu_switch, .-moe_emu_switch
)");

struct Fiber {
  void *sp = nullptr;
};

/// Makes `fiber` start `entry` (which never returns) on `stack` at its next
/// switch.
void startFiber(Fiber &fiber, void *stack, size_t size, void (*entry)(),
                Fiber &) {
  auto top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  auto *words = reinterpret_cast<uint64_t *>(top);
  words[-1] = 0;                                     // entry's return address
  words[-2] = reinterpret_cast<uintptr_t>(entry);     // popped by `ret`
  for (int i = 3; i <= 8; ++i)
    words[-i] = 0;                                   // rbp, rbx, r12-r15
  uint32_t mxcsr;
  uint16_t fpcw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpcw));
  auto *control = reinterpret_cast<unsigned char *>(&words[-9]);
  std::memcpy(control, &mxcsr, 4);
  std::memcpy(control + 4, &fpcw, 2);
  fiber.sp = &words[-9];
}

void switchFiber(Fiber &from, Fiber &to) { moe_emu_switch(&from.sp, to.sp); }
#else
struct Fiber {
  ucontext_t context;
};

void startFiber(Fiber &fiber, void *stack, size_t size, void (*entry)(),
                Fiber &link) {
  getcontext(&fiber.context);
  fiber.context.uc_stack.ss_sp = stack;
  fiber.context.uc_stack.ss_size = size;
  fiber.context.uc_link = &link.context;
  makecontext(&fiber.context, entry, 0);
}

void switchFiber(Fiber &from, Fiber &to) {
  swapcontext(&from.context, &to.context);
}
#endif

constexpr uint32_t kWarpSize = 32;
constexpr uint32_t kMaxThreads = 1024;
constexpr size_t kStackBytes = 256 * 1024;

enum class State { Runnable, AtBarrier, AtWarpOp, Done };
enum class WarpOp { Shuffle, Match, Sync, LdMatrix, Mma };

const char *warpOpName(WarpOp op) {
  switch (op) {
  case WarpOp::Shuffle:
    return "shfl.sync";
  case WarpOp::Match:
    return "match.sync";
  case WarpOp::Sync:
    return "bar.warp.sync";
  case WarpOp::LdMatrix:
    return "ldmatrix";
  case WarpOp::Mma:
    return "mma.sync";
  }
  return "?";
}

/// A lane mask as the messages print it: 0x and eight hex digits.
std::string maskString(uint32_t mask) {
  char hex[11];
  std::snprintf(hex, sizeof(hex), "0x%08x", mask);
  return hex;
}

/// The shared-memory bytes (offset, count) that a thread's asynchronous
/// operations may still touch, in the groups of their commits: the open
/// group, and the committed ones, oldest first. A wait retires all but the
/// newest `pending` committed groups.
class AsyncGroups {
public:
  void add(size_t offset, size_t bytes) { open.push_back({offset, bytes}); }
  void commit() {
    committed.push_back(std::move(open));
    open.clear();
  }
  /// Calls `release(offset, bytes)` for each range of the retired groups.
  template <typename Release> void retire(size_t pending, Release &&release) {
    while (committed.size() > pending) {
      for (const auto &[offset, bytes] : committed.front())
        release(offset, bytes);
      committed.erase(committed.begin());
    }
  }

private:
  std::vector<std::pair<size_t, size_t>> open;
  std::vector<std::vector<std::pair<size_t, size_t>>> committed;
};

struct Thread {
  Fiber fiber;
  uint32_t tid[3] = {0, 0, 0};
  uint32_t linear = 0;
  State state = State::Runnable;
  // The warp-wide operation this thread waits at: its mask, its inputs
  // (shuffle: mode, value, offset, clamp; ldmatrix: the row address; mma:
  // the A, B and C fragments) and, once every lane is there, its outputs.
  WarpOp op = WarpOp::Sync;
  uint32_t mask = 0;
  uint32_t in[10] = {};
  const void *address = nullptr;
  int32_t num = 0, trans = 0;
  uint32_t out[4] = {};
  // Its cp.async copies into shared memory not yet covered by a wait, and
  // the shared bytes its wgmma.mma_async operations read that no
  // wgmma.wait_group has covered yet.
  AsyncGroups copies, wgmmaReads;
  bool wgmmaFenced = false;
};

/// Fiber stacks of one host thread, kept across its launches, each with a
/// guard page below it.
class Stacks {
public:
  Stacks() : page(static_cast<size_t>(sysconf(_SC_PAGESIZE))) {}
  Stacks(const Stacks &) = delete;
  Stacks &operator=(const Stacks &) = delete;
  ~Stacks() {
    for (char *stack : stacks)
      munmap(stack - page, kStackBytes + page);
  }

  void *get(size_t i) {
    while (stacks.size() <= i) {
      void *p = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED)
        fail("cannot map a fiber stack");
      mprotect(p, page, PROT_NONE);
      stacks.push_back(static_cast<char *>(p) + page);
    }
    return stacks[i];
  }

private:
  size_t page;
  std::vector<char *> stacks;
};

enum class Access { Read, Write, Atomic };

/// Races on shared memory, found as the accesses happen: two accesses to one
/// byte by different threads of a block, at least one of them a write and
/// not both atomic, with no barrier between them and, for two lanes of one
/// warp, no warp-wide operation naming both (a shuffle, a warp sync, ...)
/// completed in between. Per byte it keeps the last write and the last two
/// readers since, tagged with the block, the barrier epoch and the warp's
/// count of completed warp-wide operations.
class RaceChecker {
public:
  struct Race {
    uint32_t other;
    bool otherWrote;
  };

  void startBlock(size_t bytes, uint32_t threads) {
    if (shadow.size() < bytes)
      shadow.resize(bytes);
    ++generation;
    epoch = 0;
    uint32_t warps = (threads + kWarp - 1) / kWarp;
    seq.assign(warps, 0);
    fullSeq.assign(warps, 0);
    pairSeq.assign(static_cast<size_t>(warps) * kWarp * kWarp, 0);
  }
  void barrier() { ++epoch; }
  void warpOpCompleted(uint32_t warp, uint32_t mask) {
    uint32_t now = ++seq[warp];
    if (mask == 0xffffffffu) {
      fullSeq[warp] = now;
      return;
    }
    for (uint32_t a = 0; a < kWarp; ++a)
      if (mask >> a & 1)
        for (uint32_t b = 0; b < kWarp; ++b)
          if (mask >> b & 1)
            pairSeq[(static_cast<size_t>(warp) * kWarp + a) * kWarp + b] = now;
  }

  /// Records an access of `thread` to byte `offset`; the race it makes
  /// with an earlier access, if any.
  std::optional<Race> access(uint32_t thread, size_t offset, Access kind) {
    Byte &byte = shadow[offset];
    Record now{generation, epoch, seq[thread / kWarp], thread,
               kind == Access::Atomic};
    auto conflicts = [&](const Record &r, bool bothMayBeAtomic) {
      if (!current(r) || r.thread == thread)
        return false;
      if (bothMayBeAtomic && r.atomic && kind == Access::Atomic)
        return false;
      return !synced(r, thread);
    };
    if (conflicts(byte.write, true))
      return Race{byte.write.thread, true};
    if (kind == Access::Read) {
      if (current(byte.reader[0]) && byte.reader[0].thread != thread)
        byte.reader[1] = byte.reader[0];
      byte.reader[0] = now;
      return std::nullopt;
    }
    for (const Record &r : byte.reader)
      if (conflicts(r, false))
        return Race{r.thread, false};
    byte.write = now;
    byte.reader[0] = byte.reader[1] = Record();
    return std::nullopt;
  }

private:
  static constexpr uint32_t kWarp = 32;
  struct Record {
    uint32_t generation = 0, epoch = 0, seq = 0, thread = 0;
    bool atomic = false;
  };
  struct Byte {
    Record write;
    Record reader[2];
  };

  bool current(const Record &r) const {
    return r.generation == generation && r.epoch == epoch;
  }
  /// Whether a warp-wide operation naming both lanes completed after `r`.
  bool synced(const Record &r, uint32_t thread) const {
    uint32_t warp = thread / kWarp;
    if (r.thread / kWarp != warp)
      return false;
    if (fullSeq[warp] > r.seq)
      return true;
    size_t pair = (static_cast<size_t>(warp) * kWarp + r.thread % kWarp) *
                      kWarp +
                  thread % kWarp;
    return pairSeq[pair] > r.seq;
  }

  std::vector<Byte> shadow;
  uint32_t generation = 0, epoch = 0;
  std::vector<uint32_t> seq, fullSeq, pairSeq;
};

struct Launch {
  void (*entry)(void **) = nullptr;
  void **params = nullptr;
  const char *name = "";
  uint32_t grid[3] = {1, 1, 1}, block[3] = {1, 1, 1}, ctaid[3] = {0, 0, 0};
  std::vector<Thread> threads;
  std::vector<unsigned char> shared;
  Fiber scheduler;
  Thread *current = nullptr;
  uint32_t live = 0, atBarrier = 0;
  size_t staticShared = 0;
  RaceChecker races;
  /// Per byte of shared memory, 1 + the thread whose cp.async may still be
  /// writing it, or 0.
  std::vector<uint32_t> inFlight;
  /// Per byte of shared memory, how many threads' wgmma.mma_async may still
  /// be reading it.
  std::vector<uint16_t> wgmmaReaders;
  /// Per warp, how many of its lanes wait at a warp-wide operation, and
  /// which lanes have exited: an operation is looked at lane by lane only
  /// once as many lanes wait as its mask names, or when the mask names an
  /// exited lane (an error), not at every lane's arrival.
  std::vector<uint32_t> warpWaiting, warpExited;

  std::string where() const {
    return std::string("kernel ") + name + ", block (" +
           std::to_string(ctaid[0]) + ", " + std::to_string(ctaid[1]) +
           ", " + std::to_string(ctaid[2]) + ")";
  }
  void runBlock();
  void releaseBarrier();
  void tryCompleteWarpOp(uint32_t warp, const Thread &arrived);
  [[noreturn]] void deadlock();
  /// Checks an access of `thread` to `bytes` bytes of shared memory at
  /// `address`: in bounds, and without a race.
  void sharedAccess(uint32_t thread, const void *address, size_t bytes,
                    Access kind, const char *what);
};

thread_local Launch *active = nullptr;
/// Host threads may launch kernels at once (a compiled model called from
/// several threads): each runs its launches on fibers of its own.
Stacks &stacks() {
  thread_local Stacks s;
  return s;
}

Thread &self() {
  if (!active || !active->current)
    fail("an emulated device function ran outside a kernel launch");
  return *active->current;
}

/// Back to the scheduler until this thread is runnable again.
void waitUntilRunnable(Thread &t) {
  while (t.state != State::Runnable)
    switchFiber(t.fiber, active->scheduler);
}

void threadMain() {
  Launch &l = *active;
  l.entry(l.params);
  Thread &t = *l.current;
  t.state = State::Done;
  l.warpExited[t.linear / kWarpSize] |= 1u << (t.linear % kWarpSize);
  --l.live;
  // Exited threads no longer hold a barrier back.
  if (l.live && l.atBarrier == l.live)
    l.releaseBarrier();
  // Never resumed.
  switchFiber(t.fiber, l.scheduler);
}

void Launch::releaseBarrier() {
  for (Thread &t : threads)
    if (t.state == State::AtBarrier)
      t.state = State::Runnable;
  atBarrier = 0;
  races.barrier();
}

void Launch::sharedAccess(uint32_t thread, const void *address, size_t bytes,
                          Access kind, const char *what) {
  auto offset = static_cast<const unsigned char *>(address) - shared.data();
  if (offset < 0 || static_cast<size_t>(offset) + bytes > shared.size())
    fail(where() + ": thread " + std::to_string(thread) + " " + what + " " +
         std::to_string(bytes) + " bytes at shared offset " +
         std::to_string(offset) + ", outside the block's " +
         std::to_string(shared.size()) + " bytes of shared memory");
  auto first = static_cast<size_t>(offset);
  for (size_t at = first; at < first + bytes; ++at) {
    if (kind != Access::Read && wgmmaReaders[at])
      fail(where() + ": thread " + std::to_string(thread) + " " + what +
           " shared offset " + std::to_string(at) +
           ", which a wgmma.mma_async may still be reading (no "
           "wgmma.wait_group of its warpgroup covers it)");
    if (uint32_t copier = inFlight[at])
      fail(where() + ": thread " + std::to_string(thread) + " " + what +
           " shared offset " + std::to_string(at) +
           ", which a cp.async of thread " + std::to_string(copier - 1) +
           " may still be writing (no cp.async.wait_group covers it)");
    if (std::optional<RaceChecker::Race> race = races.access(thread, at, kind))
      fail(where() + ": shared-memory race at offset " + std::to_string(at) +
           ": thread " + std::to_string(thread) + " " + what +
           " a byte that thread " + std::to_string(race->other) +
           (race->otherWrote ? " wrote" : " read") +
           " with no barrier (or warp-wide operation naming both) in "
           "between");
  }
}

void Launch::runBlock() {
  uint32_t count = block[0] * block[1] * block[2];
  threads.assign(count, Thread());
  for (uint32_t i = 0; i < count; ++i) {
    Thread &t = threads[i];
    t.linear = i;
    t.tid[0] = i % block[0];
    t.tid[1] = (i / block[0]) % block[1];
    t.tid[2] = i / (block[0] * block[1]);
    startFiber(t.fiber, stacks().get(i), kStackBytes, threadMain, scheduler);
  }
  std::memset(shared.data(), fillByte(), shared.size());
  races.startBlock(shared.size(), count);
  inFlight.assign(shared.size(), 0);
  wgmmaReaders.assign(shared.size(), 0);
  warpWaiting.assign((count + kWarpSize - 1) / kWarpSize, 0);
  warpExited.assign(warpWaiting.size(), 0);
  // The lanes a partial last warp does not have count as exited, so that
  // a mask naming them is an error, not a wait.
  if (uint32_t partial = count % kWarpSize)
    warpExited.back() = ~0u << partial;
  live = count;
  atBarrier = 0;
  while (live) {
    bool progress = false;
    for (Thread &t : threads) {
      if (t.state != State::Runnable)
        continue;
      current = &t;
      switchFiber(scheduler, t.fiber);
      current = nullptr;
      progress = true;
    }
    if (!progress)
      deadlock();
  }
}

void Launch::deadlock() {
  // Runs of consecutive threads waiting at the same place.
  auto place = [](const Thread &t) -> std::string {
    if (t.state == State::AtBarrier)
      return "at a barrier";
    if (t.state == State::Done)
      return "exited";
    return std::string("at ") + warpOpName(t.op) + " (mask " +
           maskString(t.mask) + ")";
  };
  std::string message = where() + ": deadlock:";
  for (size_t i = 0; i < threads.size();) {
    std::string here = place(threads[i]);
    size_t j = i + 1;
    while (j < threads.size() && place(threads[j]) == here)
      ++j;
    message += (i ? "; " : " ") +
               (j - i == 1 ? "thread " + std::to_string(i)
                           : "threads " + std::to_string(i) + "-" +
                                 std::to_string(j - 1)) +
               " " + here;
    i = j;
  }
  fail(message);
}

float bf16ToFloat(uint16_t bits) {
  uint32_t word = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &word, sizeof(f));
  return f;
}

uint32_t floatBits(float f) {
  uint32_t word;
  std::memcpy(&word, &f, sizeof(word));
  return word;
}

/// shfl.sync as the PTX ISA defines it: the source lane and whether it is
/// in range; the value of a lane outside the mask reads 0xffffffff.
void shuffle(Thread *const lanes[kWarpSize], uint32_t mask) {
  for (uint32_t lane = 0; lane < kWarpSize; ++lane) {
    if (!(mask >> lane & 1))
      continue;
    Thread &t = *lanes[lane];
    uint32_t mode = t.in[0], b = t.in[2] & 31, c = t.in[3];
    uint32_t segmask = (c >> 8) & 31, cval = c & 31;
    int32_t maxLane = static_cast<int32_t>((lane & segmask) |
                                           (cval & ~segmask));
    int32_t minLane = static_cast<int32_t>(lane & segmask);
    int32_t j = static_cast<int32_t>(lane);
    bool inRange = false;
    switch (mode) {
    case 0: // bfly
      j = static_cast<int32_t>(lane ^ b);
      inRange = j <= maxLane;
      break;
    case 1: // up
      j = static_cast<int32_t>(lane) - static_cast<int32_t>(b);
      inRange = j >= maxLane;
      break;
    case 2: // down
      j = static_cast<int32_t>(lane + b);
      inRange = j <= maxLane;
      break;
    case 3: // idx
      j = minLane | static_cast<int32_t>(b & ~segmask);
      inRange = j <= maxLane;
      break;
    default:
      fail("shfl.sync: unknown mode " + std::to_string(mode));
    }
    if (!inRange)
      j = static_cast<int32_t>(lane);
    uint32_t value = 0xffffffffu;
    if (j >= 0 && j < static_cast<int32_t>(kWarpSize) && (mask >> j & 1))
      value = lanes[j]->in[1];
    t.out[0] = value;
    t.out[1] = inRange;
  }
}

/// ldmatrix .m8n8 .b16: lanes 8i..8i+7 give the row addresses of matrix i;
/// lane t receives row t/4, columns 2(t%4) and 2(t%4)+1 of each matrix (of
/// its transpose with .trans).
void ldmatrix(Thread *const lanes[kWarpSize]) {
  int32_t num = lanes[0]->num, trans = lanes[0]->trans;
  for (int32_t lane = 0; lane < 8 * num; ++lane)
    active->sharedAccess(lanes[lane]->linear, lanes[lane]->address, 16,
                         Access::Read, "reads (ldmatrix)");
  for (uint32_t lane = 0; lane < kWarpSize; ++lane) {
    Thread &t = *lanes[lane];
    if (t.num != num || t.trans != trans)
      fail("ldmatrix: the lanes of a warp disagree on the shape");
    uint32_t r = lane / 4, c = 2 * (lane % 4);
    for (int32_t i = 0; i < num; ++i) {
      auto element = [&](uint32_t row, uint32_t col) {
        const auto *p =
            static_cast<const uint16_t *>(lanes[8 * i + row]->address);
        return p[col];
      };
      uint16_t lo = trans ? element(c, r) : element(r, c);
      uint16_t hi = trans ? element(c + 1, r) : element(r, c + 1);
      t.out[i] = lo | static_cast<uint32_t>(hi) << 16;
    }
  }
}

/// mma.sync m16n8k16, A row-major and B column-major bf16, C and D f32, in
/// the fragment layout of the PTX ISA (group g = lane / 4, q = lane % 4).
void mma(Thread *const lanes[kWarpSize]) {
  float a[16][16], b[16][8], c[16][8];
  for (uint32_t lane = 0; lane < kWarpSize; ++lane) {
    const uint32_t *in = lanes[lane]->in;
    uint32_t g = lane / 4, q = lane % 4;
    for (uint32_t h = 0; h < 2; ++h) {
      auto lo = [&](uint32_t w) {
        return bf16ToFloat(static_cast<uint16_t>(w >> (16 * h)));
      };
      a[g][2 * q + h] = lo(in[0]);
      a[g + 8][2 * q + h] = lo(in[1]);
      a[g][2 * q + 8 + h] = lo(in[2]);
      a[g + 8][2 * q + 8 + h] = lo(in[3]);
      b[2 * q + h][g] = lo(in[4]);
      b[2 * q + 8 + h][g] = lo(in[5]);
    }
    for (uint32_t i = 0; i < 4; ++i) {
      float f;
      std::memcpy(&f, &in[6 + i], sizeof(f));
      c[g + 8 * (i / 2)][2 * q + i % 2] = f;
    }
  }
  for (uint32_t lane = 0; lane < kWarpSize; ++lane) {
    uint32_t g = lane / 4, q = lane % 4;
    for (uint32_t i = 0; i < 4; ++i) {
      uint32_t m = g + 8 * (i / 2), n = 2 * q + i % 2;
      // Exact bf16 products, accumulated in double, rounded once.
      double sum = c[m][n];
      for (uint32_t k = 0; k < 16; ++k)
        sum += static_cast<double>(a[m][k]) * b[k][n];
      lanes[lane]->out[i] = floatBits(static_cast<float>(sum));
    }
  }
}

void Launch::tryCompleteWarpOp(uint32_t warp, const Thread &arrived) {
  uint32_t mask = arrived.mask;
  if (warpWaiting[warp] < static_cast<uint32_t>(__builtin_popcount(mask)) &&
      !(mask & warpExited[warp]))
    return;
  uint32_t first = warp * kWarpSize;
  uint32_t count = static_cast<uint32_t>(threads.size());
  Thread *lanes[kWarpSize] = {};
  for (uint32_t lane = 0; lane < kWarpSize; ++lane) {
    if (!(mask >> lane & 1))
      continue;
    if (first + lane >= count)
      fail(where() + ": " + warpOpName(arrived.op) + " names lane " +
           std::to_string(lane) + " of warp " + std::to_string(warp) +
           ", which the block does not have");
    Thread &t = threads[first + lane];
    if (t.state == State::Done)
      fail(where() + ": thread " + std::to_string(arrived.linear) + " is at " +
           warpOpName(arrived.op) + " with thread " +
           std::to_string(t.linear) + " in its mask, which has exited");
    if (t.state != State::AtWarpOp)
      return;
    if (t.op != arrived.op || t.mask != mask)
      fail(where() + ": threads " + std::to_string(arrived.linear) + " and " +
           std::to_string(t.linear) + " of one warp wait at different " +
           "warp-wide operations (" + warpOpName(arrived.op) + " and " +
           warpOpName(t.op) + ") or masks");
    lanes[lane] = &t;
  }
  switch (arrived.op) {
  case WarpOp::Shuffle:
    shuffle(lanes, mask);
    break;
  case WarpOp::Match:
    for (uint32_t lane = 0; lane < kWarpSize; ++lane) {
      if (!lanes[lane])
        continue;
      uint32_t same = 0;
      for (uint32_t other = 0; other < kWarpSize; ++other)
        if (lanes[other] && lanes[other]->in[0] == lanes[lane]->in[0])
          same |= 1u << other;
      lanes[lane]->out[0] = same;
    }
    break;
  case WarpOp::Sync:
    break;
  case WarpOp::LdMatrix:
    ldmatrix(lanes);
    break;
  case WarpOp::Mma:
    mma(lanes);
    break;
  }
  races.warpOpCompleted(warp, mask);
  for (Thread *t : lanes)
    if (t)
      t->state = State::Runnable;
  warpWaiting[warp] -= static_cast<uint32_t>(__builtin_popcount(mask));
}

/// Waits at a warp-wide operation until every lane of `mask` is there.
void warpOp(Thread &t, WarpOp op, uint32_t mask) {
  uint32_t lane = t.linear % kWarpSize;
  if (!(mask >> lane & 1)) {
    fail(active->where() + ": thread " + std::to_string(t.linear) + " runs " +
         warpOpName(op) + " with mask " + maskString(mask) +
         ", which does not name its own lane (undefined in PTX)");
  }
  t.op = op;
  t.mask = mask;
  t.state = State::AtWarpOp;
  ++active->warpWaiting[t.linear / kWarpSize];
  active->tryCompleteWarpOp(t.linear / kWarpSize, t);
  waitUntilRunnable(t);
}

constexpr uint32_t kFullMask = 0xffffffffu;

} // namespace

//===----------------------------------------------------------------------===//
// Device functions (called by kernels compiled by moe-gpu-emulate)
//===----------------------------------------------------------------------===//

MOE_EMU_EXPORT int32_t moe_emu_sreg(int32_t which) {
  Thread &t = self();
  const Launch &l = *active;
  uint32_t lane = t.linear % kWarpSize;
  switch (which) {
  case 0:
  case 1:
  case 2:
    return static_cast<int32_t>(t.tid[which]);
  case 3:
  case 4:
  case 5:
    return static_cast<int32_t>(l.block[which - 3]);
  case 6:
  case 7:
  case 8:
    return static_cast<int32_t>(l.ctaid[which - 6]);
  case 9:
  case 10:
  case 11:
    return static_cast<int32_t>(l.grid[which - 9]);
  case 12:
    return static_cast<int32_t>(lane);
  case 13:
    return static_cast<int32_t>(kWarpSize);
  case 14:
    return static_cast<int32_t>((1u << lane) - 1);
  case 15:
    return static_cast<int32_t>(lane == 31 ? kFullMask : (2u << lane) - 1);
  case 16:
    return static_cast<int32_t>(1u << lane);
  case 17:
    return static_cast<int32_t>(kFullMask << lane);
  case 18:
    return static_cast<int32_t>(lane == 31 ? 0u : kFullMask << (lane + 1));
  default:
    fail("unknown special register " + std::to_string(which));
  }
}

/// Every load, store and atomic of a kernel on shared memory comes here
/// first (`kind`: 0 a load, 1 a store, 2 an atomic).
MOE_EMU_EXPORT void moe_emu_shared_access(const void *address, int64_t bytes,
                                          int32_t kind) {
  Thread &t = self();
  Access access = kind == 0 ? Access::Read
                  : kind == 1 ? Access::Write
                              : Access::Atomic;
  active->sharedAccess(t.linear, address, static_cast<size_t>(bytes), access,
                       kind == 0 ? "reads" : kind == 1 ? "writes"
                                                       : "updates atomically");
}

namespace {
/// Live device allocations (and registered host memory), by start address.
class Allocations {
public:
  void add(const void *p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex);
    ranges[reinterpret_cast<uintptr_t>(p)] = bytes;
  }
  void remove(const void *p) {
    std::lock_guard<std::mutex> lock(mutex);
    ranges.erase(reinterpret_cast<uintptr_t>(p));
  }
  bool contains(const void *p, size_t bytes) const {
    std::lock_guard<std::mutex> lock(mutex);
    auto address = reinterpret_cast<uintptr_t>(p);
    auto it = ranges.upper_bound(address);
    if (it == ranges.begin())
      return false;
    --it;
    return address + bytes <= it->first + it->second;
  }

private:
  mutable std::mutex mutex;
  std::map<uintptr_t, size_t> ranges;
};

Allocations &allocations() {
  static Allocations a;
  return a;
}
} // namespace

/// Every load, store and atomic of a kernel on memory other than shared
/// memory and its own stack comes here first (`kind` as above).
MOE_EMU_EXPORT void moe_emu_global_access(const void *address, int64_t bytes,
                                          int32_t kind) {
  Thread &t = self();
  if (allocations().contains(address, static_cast<size_t>(bytes)))
    return;
  char where[32];
  std::snprintf(where, sizeof(where), "%p", address);
  fail(active->where() + ": thread " + std::to_string(t.linear) + " " +
       (kind == 0 ? "reads" : kind == 1 ? "writes" : "updates atomically") +
       " " + std::to_string(bytes) + " bytes at " + where +
       ", outside every live device allocation");
}

MOE_EMU_EXPORT void *moe_emu_shared() {
  self();
  return active->shared.data();
}

/// CUDA's vprintf: `args` holds the arguments, each at an offset aligned to
/// its size (floats promoted to double), as the device's printf packs them.
MOE_EMU_EXPORT int32_t moe_emu_vprintf(const char *format,
                                       const unsigned char *args) {
  self();
  std::string out;
  size_t offset = 0;
  auto next = [&](size_t bytes) {
    offset = (offset + bytes - 1) / bytes * bytes;
    const unsigned char *p = args + offset;
    offset += bytes;
    return p;
  };
  for (const char *c = format; *c; ++c) {
    if (*c != '%') {
      out.push_back(*c);
      continue;
    }
    if (c[1] == '%') {
      out.push_back('%');
      ++c;
      continue;
    }
    // One conversion: flags, width, precision, length, specifier.
    const char *start = c++;
    while (*c && std::strchr("-+ #0", *c))
      ++c;
    while (*c && (std::isdigit(static_cast<unsigned char>(*c)) || *c == '.'))
      ++c;
    bool wide = false;
    while (*c && std::strchr("hlzjtL", *c))
      wide |= *c++ != 'h';
    if (!*c)
      break;
    // The conversion without its length modifier, applied to a value of the
    // widest type of its kind.
    std::string spec(start, static_cast<size_t>(c - start));
    spec.erase(std::remove_if(spec.begin(), spec.end(),
                              [](char m) { return std::strchr("hlzjtL", m); }),
               spec.end());
    char buffer[512];
    char conv = *c;
    if (std::strchr("diouxXc", conv)) {
      long long value = 0;
      if (wide) {
        int64_t v;
        std::memcpy(&v, next(8), 8);
        value = v;
      } else {
        int32_t v;
        std::memcpy(&v, next(4), 4);
        value = std::strchr("di", conv) ? v : static_cast<uint32_t>(v);
      }
      spec += conv == 'c' ? "c" : std::string("ll") + conv;
      std::snprintf(buffer, sizeof(buffer), spec.c_str(),
                    conv == 'c' ? static_cast<int>(value) : value);
    } else if (std::strchr("fFeEgGaA", conv)) {
      double v;
      std::memcpy(&v, next(8), 8);
      spec += conv;
      std::snprintf(buffer, sizeof(buffer), spec.c_str(), v);
    } else if (conv == 's' || conv == 'p') {
      const void *v;
      std::memcpy(&v, next(8), 8);
      spec += conv;
      if (conv == 's')
        std::snprintf(buffer, sizeof(buffer), spec.c_str(),
                      v ? static_cast<const char *>(v) : "(null)");
      else
        std::snprintf(buffer, sizeof(buffer), spec.c_str(), v);
    } else {
      fail(std::string("printf: unsupported conversion '%") + conv + "'");
    }
    out += buffer;
  }
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  return static_cast<int32_t>(out.size());
}

/// Dynamic shared memory follows the kernel's static shared memory.
MOE_EMU_EXPORT void *moe_emu_dynamic_shared() {
  self();
  return active->shared.data() + active->staticShared;
}

MOE_EMU_EXPORT void moe_emu_barrier() {
  Thread &t = self();
  Launch &l = *active;
  t.state = State::AtBarrier;
  if (++l.atBarrier == l.live)
    l.releaseBarrier();
  waitUntilRunnable(t);
}

MOE_EMU_EXPORT uint64_t moe_emu_shfl(int32_t mode, int32_t mask,
                                     int32_t value, int32_t offset,
                                     int32_t clamp) {
  Thread &t = self();
  t.in[0] = static_cast<uint32_t>(mode);
  t.in[1] = static_cast<uint32_t>(value);
  t.in[2] = static_cast<uint32_t>(offset);
  t.in[3] = static_cast<uint32_t>(clamp);
  warpOp(t, WarpOp::Shuffle, static_cast<uint32_t>(mask));
  return t.out[0] | static_cast<uint64_t>(t.out[1]) << 32;
}

MOE_EMU_EXPORT int32_t moe_emu_match_any(int32_t mask, int32_t value) {
  Thread &t = self();
  t.in[0] = static_cast<uint32_t>(value);
  warpOp(t, WarpOp::Match, static_cast<uint32_t>(mask));
  return static_cast<int32_t>(t.out[0]);
}

MOE_EMU_EXPORT void moe_emu_warp_sync(int32_t mask) {
  warpOp(self(), WarpOp::Sync, static_cast<uint32_t>(mask));
}

MOE_EMU_EXPORT void moe_emu_ldmatrix(const void *row, int32_t num,
                                     int32_t trans, uint32_t *out) {
  Thread &t = self();
  t.address = row;
  t.num = num;
  t.trans = trans;
  warpOp(t, WarpOp::LdMatrix, kFullMask);
  std::memcpy(out, t.out, sizeof(uint32_t) * static_cast<size_t>(num));
}

/// `fragments`: A (4 words), B (2), C (4 f32) in, D (4 f32) out after them.
MOE_EMU_EXPORT void moe_emu_mma_m16n8k16_bf16(uint32_t *fragments) {
  Thread &t = self();
  std::memcpy(t.in, fragments, sizeof(t.in));
  warpOp(t, WarpOp::Mma, kFullMask);
  std::memcpy(fragments + 10, t.out, sizeof(t.out));
}

/// The copy happens at once; its bytes count as in flight until a
/// cp.async.wait_group of this thread covers its group.
MOE_EMU_EXPORT void moe_emu_cp_async(void *dst, const void *src, int32_t size,
                                     int32_t srcSize) {
  Thread &t = self();
  active->sharedAccess(t.linear, dst, static_cast<size_t>(size),
                       Access::Write, "writes (cp.async)");
  if (srcSize > 0)
    moe_emu_global_access(src, srcSize < size ? srcSize : size, 0);
  auto offset = static_cast<size_t>(static_cast<unsigned char *>(dst) -
                                    active->shared.data());
  for (size_t i = 0; i < static_cast<size_t>(size); ++i)
    active->inFlight[offset + i] = t.linear + 1;
  t.copies.add(offset, static_cast<size_t>(size));
  int32_t copied = srcSize < size ? srcSize : size;
  if (copied > 0)
    std::memcpy(dst, src, static_cast<size_t>(copied));
  if (copied < size)
    std::memset(static_cast<char *>(dst) + (copied > 0 ? copied : 0), 0,
                static_cast<size_t>(size - (copied > 0 ? copied : 0)));
}

namespace {
/// A stream's work while it is captured (cuStreamBeginCapture), replayed by
/// cuGraphLaunch: kernel launches with a copy of their arguments, copies,
/// memsets, and the allocations made during the capture, which keep their
/// address, are refilled with fillByte() at each replay (as fresh device
/// memory) and are freed with the graph.
struct Graph {
  std::vector<std::function<void()>> steps;
  std::vector<void *> owned;
  std::vector<std::unique_ptr<unsigned char[]>> copies;
};

class Captures {
public:
  /// The graph `stream` is being captured into, if any.
  Graph *of(void *stream) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = graphs.find(stream);
    return it == graphs.end() ? nullptr : it->second;
  }
  void begin(void *stream, Graph *graph) {
    std::lock_guard<std::mutex> lock(mutex);
    graphs[stream] = graph;
  }
  Graph *end(void *stream) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = graphs.find(stream);
    if (it == graphs.end())
      return nullptr;
    Graph *graph = it->second;
    graphs.erase(it);
    return graph;
  }

private:
  std::mutex mutex;
  std::map<void *, Graph *> graphs;
};

Captures &captures() {
  static Captures c;
  return c;
}

/// Runs `step` now, or records it when `stream` is being captured.
void enqueue(void *stream, std::function<void()> step) {
  if (Graph *graph = stream ? captures().of(stream) : nullptr)
    graph->steps.push_back(std::move(step));
  else
    step();
}

struct Kernel {
  void (*entry)(void **);
  const char *name;
  int64_t grid[3], block[3], staticShared, dynamicShared;
};

void runKernel(const Kernel &k, void **params) {
  if (active)
    fail(std::string("kernel ") + k.name + " launched from a kernel");
  Launch l;
  l.entry = k.entry;
  l.params = params;
  l.name = k.name;
  for (int i = 0; i < 3; ++i) {
    l.grid[i] = static_cast<uint32_t>(k.grid[i]);
    l.block[i] = static_cast<uint32_t>(k.block[i]);
  }
  l.staticShared = static_cast<size_t>(k.staticShared);
  l.shared.resize(static_cast<size_t>(k.staticShared + k.dynamicShared));
  active = &l;
  for (uint32_t z = 0; z < l.grid[2]; ++z)
    for (uint32_t y = 0; y < l.grid[1]; ++y)
      for (uint32_t x = 0; x < l.grid[0]; ++x) {
        l.ctaid[0] = x;
        l.ctaid[1] = y;
        l.ctaid[2] = z;
        l.runBlock();
      }
  active = nullptr;
}
} // namespace

/// A kernel launch: `params[i]` points at argument i, inside `values`
/// (`valuesBytes` bytes), which a stream capture copies.
MOE_EMU_EXPORT void moe_emu_cp_async_commit() {
  self().copies.commit();
}

/// Waits until at most `pending` committed groups of this thread remain.
MOE_EMU_EXPORT void moe_emu_cp_async_wait(int32_t pending) {
  self().copies.retire(static_cast<size_t>(pending),
                       [](size_t offset, size_t bytes) {
                         std::fill_n(active->inFlight.begin() + offset, bytes,
                                     0u);
                       });
}

namespace {
/// An element of a wgmma operand in shared memory, K-major (the rows of A,
/// the columns of B, K contiguous) as its 64-bit matrix descriptor places
/// it: start address bits 0-13, leading byte offset bits 16-29 (between
/// the 8 x 16-byte core matrices adjacent in K, without swizzling), stride
/// byte offset bits 32-45 (between 8-row groups), base offset bits 49-51
/// and swizzling bits 62-63 (0 none, 1 128-byte); each field in 16-byte
/// units. With 128-byte swizzling, row r of an 8-row group is the 128 bytes
/// at r * 128 whose 16-byte chunks are permuted by XOR-ing address bits
/// 4-6 with bits 7-9.
class MatrixDescriptor {
public:
  MatrixDescriptor(uint64_t bits, const char *operand) : bits(bits) {
    uint64_t swizzle = bits >> 62;
    if (swizzle > 1)
      fail(active->where() + ": wgmma " + operand + " descriptor 0x" +
           hex(bits) + ": only 128-byte swizzling or none is emulated");
    if ((bits >> 49 & 7) != 0)
      fail(active->where() + ": wgmma " + operand + " descriptor 0x" +
           hex(bits) + ": a matrix base offset is not emulated (align the "
           "swizzled tile to 1024 bytes)");
    // The 18-bit shared address, within a block's shared memory (at most
    // 228 KiB): the host address whose low 18 bits it is.
    auto base = reinterpret_cast<uintptr_t>(active->shared.data());
    uint64_t address = (bits & 0x3fff) << 4;
    start = base + ((address - base) & 0x3ffff);
    leading = (bits >> 16 & 0x3fff) << 4;
    stride = (bits >> 32 & 0x3fff) << 4;
    swizzled = swizzle == 1;
  }
  /// Elements (r, 8 c) .. (r, 8 c + 7) of a 16-bit K-major operand, c < 2:
  /// one 16-byte chunk in every layout modelled here (swizzling permutes
  /// whole chunks).
  const uint16_t *chunk(uint32_t r, uint32_t c) const {
    uintptr_t at;
    if (swizzled) {
      at = start + r / 8 * stride + r % 8 * 128 + c * 16;
      at ^= (at >> 7 & 7) << 4;
    } else {
      at = start + r / 8 * stride + c * leading + r % 8 * 16;
    }
    return reinterpret_cast<const uint16_t *>(at);
  }

private:
  static std::string hex(uint64_t v) {
    char text[17];
    std::snprintf(text, sizeof(text), "%016llx",
                  static_cast<unsigned long long>(v));
    return text;
  }
  uint64_t bits;
  uintptr_t start = 0;
  uint64_t leading = 0, stride = 0;
  bool swizzled = false;
};
} // namespace

/// The runtime's moe_cuda_check: the emulator always runs, so only the
/// settings can keep it from it (2, and why in `message`).
MOE_EMU_EXPORT int32_t moe_cuda_check(char *message, int32_t size) {
  std::string bad = moe::rt::cuda::kernelChoicesError();
  if (message && size > 0)
    std::snprintf(message, static_cast<size_t>(size), "%s", bad.c_str());
  return bad.empty() ? 0 : 2;
}

/// The runtime's moe_cuda_catch_begin, moe_cuda_caught and
/// moe_cuda_catch_end: the
/// emulator's failures are a kernel's bad access or a bad launch, errors of
/// the compiler rather than of the machine, and stay fatal.
MOE_EMU_EXPORT void moe_cuda_catch_begin() {}

MOE_EMU_EXPORT int32_t moe_cuda_caught() { return 0; }

MOE_EMU_EXPORT int32_t moe_cuda_catch_end(char *message, int32_t size) {
  if (message && size > 0)
    message[0] = '\0';
  return 0;
}

/// The runtime's moe_cuda_can_run: the emulator runs code for any GPU.
MOE_EMU_EXPORT int32_t moe_cuda_can_run(const char *, const char *,
                                        char *message, int32_t size) {
  if (message && size > 0)
    message[0] = '\0';
  return 1;
}

/// A bad setting of the kernel library's choices (KernelChoices.cpp).
void moe::rt::cuda::failKernelChoice(const char *entry,
                                     const std::string &bad) {
  fail(std::string(entry) + ": " + bad);
}

/// The kernel library's choice of its sm_90a kernels (the runtime's
/// moe_gpu_use_wgmma): the emulator runs both kinds, the portable ones
/// unless MOE_GPU_WGMMA=1.
MOE_EMU_EXPORT int32_t moe_gpu_use_wgmma() {
  return moe::rt::cuda::readChoice("moe_gpu_use_wgmma",
                                   moe::rt::cuda::wgmmaChoice)
      .value_or(0);
}

/// wgmma.fence: the accumulator registers are the thread's own here; a
/// thread's first wgmma.mma_async must follow one.
MOE_EMU_EXPORT void moe_emu_wgmma_fence() { self().wgmmaFenced = true; }

/// wgmma.mma_async m64nNk16, bf16 A and B from shared memory (K-major), f32
/// D: each thread computes its own fragment at once (warp w of the
/// warpgroup holds rows 16 w .. 16 w + 15 in the mma.sync m16n8 layout,
/// one 8-column block after another), and the bytes it read count as being
/// read until a wgmma.wait_group of the thread covers them.
MOE_EMU_EXPORT void moe_emu_wgmma(float *d, int32_t n, uint64_t descA,
                                  uint64_t descB, int32_t scaleD,
                                  int32_t scaleA, int32_t scaleB,
                                  int32_t transA, int32_t transB) {
  Thread &t = self();
  if (active->threads.size() % 128)
    fail(active->where() + ": wgmma.mma_async in a block of " +
         std::to_string(active->threads.size()) +
         " threads, not whole warpgroups of 128");
  if (!t.wgmmaFenced)
    fail(active->where() + ": thread " + std::to_string(t.linear) +
         ": wgmma.mma_async with no wgmma.fence before it");
  if (transA || transB)
    fail(active->where() + ": wgmma.mma_async with transposed operands is "
         "not emulated");
  MatrixDescriptor a(descA, "A"), b(descB, "B");
  uint32_t warp = t.linear / kWarpSize % 4, lane = t.linear % kWarpSize;
  uint32_t g = lane / 4, q = lane % 4;
  // Row r of an operand's K (16 values, two 16-byte chunks), scaled; the
  // bytes count as read until a wait covers them.
  auto readRow = [&](const MatrixDescriptor &m, uint32_t r, int32_t scale,
                     float out[16]) {
    for (uint32_t c = 0; c < 2; ++c) {
      const uint16_t *p = m.chunk(r, c);
      active->sharedAccess(t.linear, p, 16, Access::Read, "reads (wgmma)");
      auto offset = static_cast<size_t>(
          reinterpret_cast<const unsigned char *>(p) - active->shared.data());
      for (size_t i = 0; i < 16; ++i)
        ++active->wgmmaReaders[offset + i];
      t.wgmmaReads.add(offset, 16);
      for (uint32_t k = 0; k < 8; ++k)
        out[8 * c + k] = (scale < 0 ? -1.0f : 1.0f) * bf16ToFloat(p[k]);
    }
  };
  float rowA[2][16];
  for (uint32_t h = 0; h < 2; ++h)
    readRow(a, 16 * warp + g + 8 * h, scaleA, rowA[h]);
  for (int32_t block = 0; block < n / 8; ++block) {
    float colB[2][16];
    for (uint32_t c = 0; c < 2; ++c)
      readRow(b, 8 * block + 2 * q + c, scaleB, colB[c]);
    for (uint32_t i = 0; i < 4; ++i) {
      // Exact bf16 products, accumulated in double, rounded once.
      float *out = d + 4 * block + i;
      double sum = scaleD ? *out : 0.0;
      for (uint32_t k = 0; k < 16; ++k)
        sum += static_cast<double>(rowA[i / 2][k]) * colB[i % 2][k];
      *out = static_cast<float>(sum);
    }
  }
}

MOE_EMU_EXPORT void moe_emu_wgmma_commit() {
  self().wgmmaReads.commit();
}

MOE_EMU_EXPORT void moe_emu_wgmma_wait(int32_t pending) {
  self().wgmmaReads.retire(static_cast<size_t>(pending),
                           [](size_t offset, size_t bytes) {
                             for (size_t i = 0; i < bytes; ++i)
                               --active->wgmmaReaders[offset + i];
                           });
}

MOE_EMU_EXPORT void moe_emu_launch(void (*entry)(void **), const char *name,
                                   int64_t gridX, int64_t gridY, int64_t gridZ,
                                   int64_t blockX, int64_t blockY,
                                   int64_t blockZ, int64_t staticShared,
                                   int64_t dynamicShared, void *stream,
                                   void **params, int64_t numParams,
                                   void *values, int64_t valuesBytes) {
  // Kernels run one after the other: a launch that overlaps the kernel
  // before it (MOE_GPU_DEPENDENT_LAUNCH) is the same launch here, but the
  // setting is read as the CUDA runtime reads it.
  moe::rt::cuda::readChoice("mgpuLaunchKernel", moe::rt::cuda::dependentLaunch);
  auto dims = [](int64_t x, int64_t y, int64_t z) {
    return std::to_string(x) + "x" + std::to_string(y) + "x" +
           std::to_string(z);
  };
  if (gridX < 0 || gridY < 0 || gridZ < 0 || gridX > INT32_MAX ||
      gridY > 65535 || gridZ > 65535)
    fail(std::string("kernel ") + name + ": grid " + dims(gridX, gridY, gridZ) +
         " is invalid (cuLaunchKernel would fail)");
  if (blockX < 0 || blockY < 0 || blockZ < 0 ||
      blockX * blockY * blockZ > kMaxThreads)
    fail(std::string("kernel ") + name + ": block " +
         dims(blockX, blockY, blockZ) +
         " is invalid (at most 1024 threads; cuLaunchKernel would fail)");
  if (staticShared < 0 || dynamicShared < 0)
    fail(std::string("kernel ") + name + ": negative shared memory size");
  if (staticShared + dynamicShared > moe::rt::cuda::kWgmmaSharedLimit)
    fail(std::string("kernel ") + name + ": " +
         std::to_string(staticShared + dynamicShared) +
         " bytes of shared memory a block, more than any device allows (" +
         std::to_string(moe::rt::cuda::kWgmmaSharedLimit) +
         "; cuLaunchKernel would fail)");
  // No blocks or no threads: nothing runs, as in libmoe_cuda_runtime.
  if (gridX * gridY * gridZ == 0 || blockX * blockY * blockZ == 0)
    return;
  Kernel kernel{entry,
                name,
                {gridX, gridY, gridZ},
                {blockX, blockY, blockZ},
                staticShared,
                dynamicShared};
  Graph *graph = stream ? captures().of(stream) : nullptr;
  if (!graph) {
    runKernel(kernel, params);
    return;
  }
  // Captured: the arguments as they are now, as cuLaunchKernel copies them.
  auto n = static_cast<size_t>(numParams);
  auto bytes = static_cast<size_t>(valuesBytes);
  graph->copies.emplace_back(new unsigned char[bytes + n * sizeof(void *)]);
  unsigned char *copy = graph->copies.back().get();
  std::memcpy(copy, values, bytes);
  auto **copied = reinterpret_cast<void **>(copy + bytes);
  for (size_t i = 0; i < n; ++i)
    copied[i] = copy + (static_cast<unsigned char *>(params[i]) -
                        static_cast<unsigned char *>(values));
  graph->steps.push_back([kernel, copied] { runKernel(kernel, copied); });
}

//===----------------------------------------------------------------------===//
// Host functions (the mgpu* calls of gpu-to-llvm) over host memory
//===----------------------------------------------------------------------===//

namespace {
struct Handle {
  int unused = 0;
};
} // namespace

MOE_EMU_EXPORT void *mgpuStreamCreate() { return new Handle(); }
/// moe_gpu_stream_is_capturing of libmoe_cuda_runtime.
MOE_EMU_EXPORT int32_t moe_gpu_stream_is_capturing(void *stream) {
  return stream && captures().of(stream) ? 1 : 0;
}
MOE_EMU_EXPORT void mgpuStreamDestroy(void *stream) {
  delete static_cast<Handle *>(stream);
}
MOE_EMU_EXPORT void mgpuStreamSynchronize(void *) {}
MOE_EMU_EXPORT void mgpuStreamWaitEvent(void *, void *) {}
MOE_EMU_EXPORT void *mgpuEventCreate() { return new Handle(); }
MOE_EMU_EXPORT void mgpuEventDestroy(void *event) {
  delete static_cast<Handle *>(event);
}
MOE_EMU_EXPORT void mgpuEventSynchronize(void *) {}
MOE_EMU_EXPORT void mgpuEventRecord(void *, void *) {}
MOE_EMU_EXPORT void mgpuSetDefaultDevice(int32_t) {}

namespace {
void *allocate(uint64_t sizeBytes) {
  size_t bytes = (sizeBytes + 255) / 256 * 256;
  void *p = std::aligned_alloc(256, bytes);
  if (!p)
    fail("mgpuMemAlloc(" + std::to_string(sizeBytes) + " bytes): out of memory");
  std::memset(p, fillByte(), bytes);
  // Kernels may touch the requested bytes, not the rounding.
  allocations().add(p, sizeBytes);
  return p;
}

void release(void *ptr) {
  allocations().remove(ptr);
  std::free(ptr);
}
} // namespace

/// Device memory: host memory aligned as cuMemAlloc aligns, filled with
/// fillByte() (device memory is not zeroed). Allocated during a capture, it
/// belongs to the graph.
MOE_EMU_EXPORT void *mgpuMemAlloc(uint64_t sizeBytes, void *stream, int8_t) {
  if (sizeBytes == 0)
    return nullptr;
  void *p = allocate(sizeBytes);
  if (Graph *graph = stream ? captures().of(stream) : nullptr) {
    graph->owned.push_back(p);
    graph->steps.push_back(
        [p, sizeBytes] { std::memset(p, fillByte(), sizeBytes); });
  }
  return p;
}

MOE_EMU_EXPORT void mgpuMemFree(void *ptr, void *stream) {
  if (!ptr)
    return;
  if (Graph *graph = stream ? captures().of(stream) : nullptr) {
    if (std::find(graph->owned.begin(), graph->owned.end(), ptr) ==
        graph->owned.end())
      fail("mgpuMemFree: a stream capture frees memory allocated outside it");
    return; // Freed with the graph.
  }
  release(ptr);
}

MOE_EMU_EXPORT void mgpuMemcpy(void *dst, void *src, size_t sizeBytes,
                               void *stream) {
  if (sizeBytes)
    enqueue(stream, [=] { std::memmove(dst, src, sizeBytes); });
}

MOE_EMU_EXPORT void mgpuMemset32(void *dst, uint32_t value, size_t count,
                                 void *stream) {
  enqueue(stream,
          [=] { std::fill_n(static_cast<uint32_t *>(dst), count, value); });
}

MOE_EMU_EXPORT void mgpuMemset16(void *dst, uint16_t value, size_t count,
                                 void *stream) {
  enqueue(stream,
          [=] { std::fill_n(static_cast<uint16_t *>(dst), count, value); });
}

/// Registered host memory is memory kernels may touch, as on the GPU.
MOE_EMU_EXPORT void mgpuMemHostRegister(void *ptr, uint64_t sizeBytes) {
  allocations().add(ptr, sizeBytes);
}
MOE_EMU_EXPORT void mgpuMemHostUnregister(void *ptr) {
  allocations().remove(ptr);
}
MOE_EMU_EXPORT void mgpuMemHostRegisterMemRef(int64_t, void *, int64_t) {}
MOE_EMU_EXPORT void mgpuMemHostUnregisterMemRef(int64_t, void *, int64_t) {}

#if defined(__x86_64__)
/// f32 to bf16, rounded to nearest even (NaN stays NaN), as the compiler
/// runtime defines it for x86-64 CPUs without a native conversion, which
/// kernels compiled for the host call: the bf16 comes back in the low half
/// of the result register.
MOE_EMU_EXPORT float __truncsfbf2(float f) {
  uint32_t bits = floatBits(f);
  uint32_t half = (bits & 0x7fffffffu) > 0x7f800000u
                      ? (bits >> 16) | 0x40u
                      : (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  float result;
  uint32_t word = half & 0xffffu;
  std::memcpy(&result, &word, sizeof(result));
  return result;
}
#endif

//===----------------------------------------------------------------------===//
// The CUDA driver functions that moe-gpu-check opens with dlopen, so that it
// runs with this library as its libcuda.so.1 and libmoe_gpu_kernels built
// for the emulator (docs/cuda.md). Names as cuda.h maps them; results are
// CUDA_SUCCESS (0) or CUDA_ERROR_INVALID_VALUE (1).
//===----------------------------------------------------------------------===//

namespace {
using CUdeviceptr = unsigned long long;
constexpr int kSuccess = 0, kInvalidValue = 1;
} // namespace

MOE_EMU_EXPORT int cuGetErrorString(int error, const char **text) {
  *text = error == kSuccess ? "no error" : "invalid argument";
  return kSuccess;
}
MOE_EMU_EXPORT int cuInit(unsigned) { return kSuccess; }
MOE_EMU_EXPORT int cuDeviceGet(int *device, int ordinal) {
  *device = ordinal;
  return ordinal == 0 ? kSuccess : kInvalidValue;
}
MOE_EMU_EXPORT int cuDeviceGetName(char *name, int length, int) {
  std::snprintf(name, static_cast<size_t>(length), "%s",
                "moe cuda emulator (SIMT, on the host)");
  return kSuccess;
}
MOE_EMU_EXPORT int cuDevicePrimaryCtxRetain(void **context, int) {
  static int primary;
  *context = &primary;
  return kSuccess;
}
MOE_EMU_EXPORT int cuCtxSetCurrent(void *) { return kSuccess; }
MOE_EMU_EXPORT int cuMemAlloc_v2(CUdeviceptr *ptr, size_t bytes) {
  *ptr = reinterpret_cast<CUdeviceptr>(bytes ? allocate(bytes) : nullptr);
  return kSuccess;
}
MOE_EMU_EXPORT int cuMemFree_v2(CUdeviceptr ptr) {
  if (ptr)
    release(reinterpret_cast<void *>(ptr));
  return kSuccess;
}
MOE_EMU_EXPORT int cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src,
                                   size_t bytes) {
  std::memcpy(reinterpret_cast<void *>(dst), src, bytes);
  return kSuccess;
}
MOE_EMU_EXPORT int cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t bytes) {
  std::memcpy(dst, reinterpret_cast<const void *>(src), bytes);
  return kSuccess;
}
MOE_EMU_EXPORT int cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src,
                                        size_t bytes, void *stream) {
  mgpuMemcpy(reinterpret_cast<void *>(dst), reinterpret_cast<void *>(src),
             bytes, stream);
  return kSuccess;
}
MOE_EMU_EXPORT int cuMemsetD32Async(CUdeviceptr dst, unsigned value,
                                    size_t count, void *stream) {
  mgpuMemset32(reinterpret_cast<void *>(dst), value, count, stream);
  return kSuccess;
}
MOE_EMU_EXPORT int cuStreamCreate(void **stream, unsigned) {
  *stream = mgpuStreamCreate();
  return kSuccess;
}
MOE_EMU_EXPORT int cuStreamDestroy_v2(void *stream) {
  mgpuStreamDestroy(stream);
  return kSuccess;
}
MOE_EMU_EXPORT int cuStreamSynchronize(void *) { return kSuccess; }
MOE_EMU_EXPORT int cuEventCreate(void **event, unsigned) {
  *event = mgpuEventCreate();
  return kSuccess;
}
MOE_EMU_EXPORT int cuEventDestroy_v2(void *event) {
  mgpuEventDestroy(event);
  return kSuccess;
}
MOE_EMU_EXPORT int cuEventRecord(void *, void *) { return kSuccess; }
MOE_EMU_EXPORT int cuEventSynchronize(void *) { return kSuccess; }
/// The emulator keeps no time.
MOE_EMU_EXPORT int cuEventElapsedTime_v2(float *ms, void *, void *) {
  *ms = 0.0f;
  return kSuccess;
}
MOE_EMU_EXPORT int cuStreamBeginCapture_v2(void *stream, int) {
  if (!stream || captures().of(stream))
    return kInvalidValue;
  captures().begin(stream, new Graph());
  return kSuccess;
}
MOE_EMU_EXPORT int cuStreamEndCapture(void *stream, void **graph) {
  *graph = captures().end(stream);
  return *graph ? kSuccess : kInvalidValue;
}
/// The executable graph is the graph.
MOE_EMU_EXPORT int cuGraphInstantiateWithFlags(void **exec, void *graph,
                                               unsigned long long) {
  *exec = graph;
  return kSuccess;
}
MOE_EMU_EXPORT int cuGraphLaunch(void *exec, void *stream) {
  if (stream && captures().of(stream))
    return kInvalidValue;
  for (const std::function<void()> &step : static_cast<Graph *>(exec)->steps)
    step();
  return kSuccess;
}
MOE_EMU_EXPORT int cuGraphExecDestroy(void *) { return kSuccess; }
MOE_EMU_EXPORT int cuGraphDestroy(void *graph) {
  auto *g = static_cast<Graph *>(graph);
  for (void *p : g->owned)
    release(p);
  delete g;
  return kSuccess;
}
