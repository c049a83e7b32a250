// check.h — a tiny registry for the native checks (test/native/*.cc are all
// linked into one program, grip_native_checks, whose main is in main.cc).
//
//   GRIP_CHECK(my_check) {
//     CHECK_TRUE(1 + 1 == 2, "arithmetic");       // msg: const char* or std::string
//     CHECK_NEAR(got, want, 1e-6, "value");
//   }
//
// A check records every failed CHECK_* (the first few messages are printed)
// and keeps going. Helpers that check things take `::grip_check::Context&
// grip_check_ctx` as a parameter so the macros work inside them too.
#pragma once
#include <cmath>
#include <string>
#include <vector>

namespace grip_check {

struct Context {
  int failures = 0;
  std::string messages;  // the first few failure messages
  void fail(const std::string& msg) {
    if (failures++ < 5) messages += (messages.empty() ? "" : "; ") + msg;
  }
};

using Fn = void (*)(Context&);
struct Entry {
  const char* name;
  Fn fn;
};
inline std::vector<Entry>& registry() {
  static std::vector<Entry> entries;
  return entries;
}
struct Registrar {
  Registrar(const char* name, Fn fn) { registry().push_back(Entry{name, fn}); }
};

}  // namespace grip_check

#define GRIP_CHECK(name)                                                             \
  static void grip_check_fn_##name(::grip_check::Context& grip_check_ctx);           \
  static const ::grip_check::Registrar grip_check_reg_##name(#name, &grip_check_fn_##name); \
  static void grip_check_fn_##name(::grip_check::Context& grip_check_ctx)

#define CHECK_TRUE(cond, msg)                                                                    \
  do {                                                                                           \
    if (!(cond))                                                                                 \
      grip_check_ctx.fail(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " + (msg)); \
  } while (0)

#define CHECK_NEAR(got, want, tol, msg)                                                              \
  do {                                                                                               \
    const double grip_g_ = (double)(got), grip_w_ = (double)(want);                                  \
    CHECK_TRUE(std::fabs(grip_g_ - grip_w_) <= (double)(tol),                                        \
               std::string(msg) + " (got " + std::to_string(grip_g_) + ", want " + std::to_string(grip_w_) + ")"); \
  } while (0)
