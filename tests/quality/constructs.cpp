// Input of ctest quality.normalise (scripts/quality.sh --self-test), never compiled. Each
// construct here made pmccabe 2.8 drop functions (often the rest of the file) or misname them
// until scripts/quality.pl normalise rewrote it. The expected value of every function, counted by
// hand (1 + if, for, while, case, &&, ||, ?:), is in constructs.expected.
namespace fixture::nested {
inline namespace v1 {

struct widget final : base {
  int after_noexcept() noexcept { return a ? 1 : 2; }
  int after_override() const override { if (a && b) return 1; return 0; }
  auto trailing(int x) const -> std::vector<int> { return x > 0 ? v : w; }
  int ref_qualified() const& { return x->y; }
  int rvalue_qualified() && { return 2; }
  alignas(64) std::atomic<int> aligned_{0};
  [[nodiscard]] int after_alignas() noexcept(true) { for (;;) { if (x) break; } return 0; }
};

}  // namespace v1

template <class T>
concept sized = requires(T t) {
  { t.size() } -> std::convertible_to<int>;
};

template <class F>
  requires(std::invocable<F> && !std::same_as<F, int>)
int constrained(F f) { return f() || g() ? 1 : 0; }

template <class F>
  requires sized<F> && std::copyable<F>
int constrained_too(F f) { return f.size(); }

int separated(long x) { return 1'000'000 > x ? 1 : 0; }

const char* raw() { return R"x(if (a) { "}" )x"; }

char quote(int c) { return c == '\'' || c == '{' ? '"' : '}'; }

struct outer::inner : base {
  int member(int a) {
    switch (a) {
      case 1: return 1;
      case 2: return 2;
      default: return 0;
    }
  }
};

template <class E>
struct spec<void(E)> {
  static int get(int a) {
    while (a) --a;
    return a;
  }
};

int with_lambda(std::vector<int> v) {
  return std::count_if(v.begin(), v.end(), [](int i) { return i > 0 && i < 9; });
}

int with_local_class(int q) {
  struct walker {
    bool visit(int n) { return n == 0 || n == 1; }
  };
  return walker{}.visit(q) ? 1 : 0;
}

}  // namespace fixture::nested

// C++20's nested inline namespace (xsn's own `namespace xsn::inline v0 {`): unrewritten, pmccabe
// loses every function after it.
namespace fixture::inline v2 {

struct gadget {
  int member(int a) const { return a > 0 && a < 9 ? 1 : 0; }
};

int in_nested_inline(int a) { while (a > 0) --a; return a; }

}  // namespace fixture::inline v2
