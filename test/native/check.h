// A minimal test harness for the native core: no dependency, builds for every target arch.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace kata_test {

struct Case {
  const char* name;
  void (*fn)();
};

inline std::vector<Case>& Cases() {
  static std::vector<Case> cases;
  return cases;
}

inline int& Failures() {
  static int failures = 0;
  return failures;
}

// Set by KATA_SKIP: the case is reported as skipped, never counted as passed.
inline const char*& SkipReason() {
  static const char* reason = nullptr;
  return reason;
}

struct Register {
  Register(const char* name, void (*fn)()) { Cases().push_back({name, fn}); }
};

}  // namespace kata_test

#define KATA_TEST(name)                                             \
  static void name();                                               \
  static const kata_test::Register name##_registered(#name, &name); \
  static void name()

#define KATA_SKIP(reason)               \
  do {                                  \
    kata_test::SkipReason() = (reason); \
    return;                             \
  } while (0)

#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++kata_test::Failures();                                                        \
    }                                                                                 \
  } while (0)

#define CHECK_EQ(a, b)                                                                        \
  do {                                                                                        \
    const auto& va = (a);                                                                     \
    const auto& vb = (b);                                                                     \
    if (!(va == vb)) {                                                                        \
      std::fprintf(stderr, "  %s:%d: CHECK_EQ(%s, %s) failed\n", __FILE__, __LINE__, #a, #b); \
      ++kata_test::Failures();                                                                \
    }                                                                                         \
  } while (0)
