// Must NOT compile (the `typed_without_json` case of the docs.snippets test): a typed context and
// a typed event without JSON conversion are refused at their use with a readable message, not by
// Boost.JSON's static assertions deep inside.
#include <xsn/runtime/builder.hpp>

#include <string_view>

struct no_json_context {
  int n = 0;
};
struct no_json_event {
  static constexpr std::string_view name = "E";
  int id = 0;
};

int main() {
  auto m = xsn::machine<no_json_context>("m").initial("a").state("a", xsn::on<no_json_event>());
  (void)m;
}
