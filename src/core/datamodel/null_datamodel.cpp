#include "datamodel/null_datamodel.hpp"

#include <cctype>

namespace xsn::inline v0 {

namespace {

// `v` without leading and trailing white space.
std::string_view trim_space(std::string_view v) {
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.remove_prefix(1);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
  return v;
}

// True when `s` is at least two characters long, starts with `open` and ends with `close`.
bool enclosed_by(std::string_view s, char open, char close) {
  return s.size() >= 2 && s.front() == open && s.back() == close;
}

// True when `s` is a string literal in single or double quotes.
bool is_quoted(std::string_view s) {
  return enclosed_by(s, '\'', '\'') || enclosed_by(s, '"', '"');
}

}  // namespace

bool detail::parse_in_predicate(std::string_view s, std::string_view& id) {
  s = trim_space(s);
  if (s.substr(0, 2) != "In") return false;
  s = trim_space(s.substr(2));
  if (!enclosed_by(s, '(', ')')) return false;
  s = trim_space(s.substr(1, s.size() - 2));
  if (!is_quoted(s)) return false;
  id = s.substr(1, s.size() - 2);
  return true;
}

namespace {

class null_datamodel final : public datamodel {
 public:
  std::string_view name() const noexcept override { return "null"; }
  result<void> setup(const statechart& chart, datamodel_host& host) override {
    chart_ = &chart;
    host_ = &host;
    return {};
  }
  result<void> declare(const data_decl&) override { return unsupported("data"); }
  result<void> initialize(const data_decl&) override { return unsupported("data"); }
  result<bool> eval_bool(expr_index e) override {
    std::string_view id;
    const auto& text = chart_->expressions[e].text;
    if (!detail::parse_in_predicate(text, id)) return eval_error{"null datamodel: not an In() predicate: " + text};
    return host_->in_state(id);
  }
  result<value> eval(expr_index) override { return unsupported("value expressions"); }
  result<std::string> eval_string(expr_index) override { return unsupported("value expressions"); }
  result<void> assign(expr_index, expr_index) override { return unsupported("assign"); }
  result<void> assign_value(expr_index, const value&) override { return unsupported("assign"); }
  result<void> run_script(expr_index) override { return unsupported("script"); }
  result<void> foreach(expr_index, expr_index, expr_index, const std::function<bool()>&) override {
    return unsupported("foreach");
  }
  void set_event(const event&) override {}
  value content_value(std::string_view text) override { return value(std::string(text)); }
  value save() override { return value(boost::json::object{}); }
  result<void> restore(const value&) override { return {}; }

 private:
  static eval_error unsupported(const char* what) {
    return eval_error{std::string("null datamodel does not support ") + what};
  }
  const statechart* chart_ = nullptr;
  datamodel_host* host_ = nullptr;
};

}  // namespace

std::unique_ptr<datamodel> make_null_datamodel() { return std::make_unique<null_datamodel>(); }

bool detail::is_null_datamodel(const datamodel& dm) noexcept { return dynamic_cast<const null_datamodel*>(&dm) != nullptr; }

}  // namespace xsn::inline v0
