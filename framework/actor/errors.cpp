// Errors across requests: CAF errors <-> twistlet exceptions.
#include <twistlet/actor.hpp>

#include <caf/actor_system_config.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/sec.hpp>

#include <cxxabi.h>

#include "actor/actor_impl.hpp"

namespace twistlet::actor {

namespace {

constexpr caf::atom_value system_category = caf::atom("system");
constexpr caf::atom_value exit_category = caf::atom("exit");

// The message strings of an error_code error's context: (text) or (type name, text).
std::string context_text(const caf::error& e) {
  const caf::message& ctx = e.context();
  if (ctx.match_elements<std::string, std::string>()) return ctx.get_as<std::string>(1);
  if (ctx.match_elements<std::string>()) return ctx.get_as<std::string>(0);
  return {};
}

std::string context_type(const caf::error& e) {
  const caf::message& ctx = e.context();
  if (ctx.match_elements<std::string, std::string>()) return ctx.get_as<std::string>(0);
  return {};
}

std::string render(const caf::error& e) {
  if (e.category() == system_category) {
    std::string s = caf::to_string(static_cast<caf::sec>(e.code()));
    if (!e.context().empty()) s += ": " + caf::deep_to_string(e.context());
    return s;
  }
  if (e.category() == exit_category) return "exit reason " + caf::to_string(static_cast<caf::exit_reason>(e.code()));
  if (e.category() == error_category) {
    std::string text = context_text(e);
    return text.empty() ? to_string(static_cast<error_code>(e.code())) : text;
  }
  return caf::to_string(e);
}

// The dynamic type of the exception in `f`, readable.
std::string exception_type(const failure& f) {
  try {
    f.raise();
  } catch (const std::exception& e) {
    return ::twistlet::detail::type_name(typeid(e));
  } catch (...) {
    if (const std::type_info* t = abi::__cxa_current_exception_type()) return ::twistlet::detail::type_name(*t);
  }
  return "unknown exception";
}

}  // namespace

caf::error make_error(error_code code, std::string message, std::string type_name) {
  caf::message ctx = code == error_code::exception ? caf::make_message(std::move(type_name), std::move(message))
                                                   : caf::make_message(std::move(message));
  return caf::error(static_cast<std::uint8_t>(code), error_category, std::move(ctx));
}

caf::error make_error(error_code code) {
  switch (code) {
    case error_code::exception:
      return make_error(code, "an exception escaped a handler", {});
    case error_code::request_cycle:
      return make_error(code, "request cycle");
    case error_code::broken_promise:
      return make_error(code, "the request was dropped without an answer");
  }
  return make_error(code, to_string(code));
}

std::string to_string(error_code code) {
  switch (code) {
    case error_code::exception:
      return "exception";
    case error_code::request_cycle:
      return "request_cycle";
    case error_code::broken_promise:
      return "broken_promise";
  }
  return "error_code(" + std::to_string(static_cast<int>(code)) + ")";
}

void configure(caf::actor_system_config& cfg) {
  cfg.add_error_category(error_category, [](std::uint8_t code, caf::atom_value, const caf::message& ctx) {
    std::string s = "twistlet_error(" + to_string(static_cast<error_code>(code));
    if (!ctx.empty()) s += ", " + caf::deep_to_string(ctx);
    return s + ")";
  });
}

actor_error::actor_error(const std::string& what, caf::error e) : std::runtime_error(what), error(std::move(e)) {}

remote_error::remote_error(const std::string& what, caf::error e, std::string type)
    : actor_error(what, std::move(e)), type_name(std::move(type)) {}

failure to_failure(const caf::error& e) {
  if (!e) throw std::invalid_argument("twistlet::actor::to_failure: empty error");
  if (e.category() == system_category) {
    switch (static_cast<caf::sec>(e.code())) {
      case caf::sec::request_timeout:
        return failure::make(timeout_error("request timed out (" + render(e) + ")"));
      case caf::sec::request_receiver_down:
        return failure::make(receiver_down_error("the receiver of the request is down", e));
      case caf::sec::unexpected_response:
        return failure::make(unexpected_response_error("unexpected response (" + render(e) + ")", e));
      default:
        break;
    }
  } else if (e.category() == error_category) {
    switch (static_cast<error_code>(e.code())) {
      case error_code::request_cycle:
        return failure::make(request_cycle_error(render(e), e));
      case error_code::exception:
        return failure::make(remote_error(render(e), e, context_type(e)));
      default:
        break;
    }
  }
  return failure::make(remote_error(render(e), e));
}

caf::error to_error(const failure& f) {
  if (const auto* c = f.get<request_cycle_error>())
    return c->error ? c->error : make_error(error_code::request_cycle, c->what());
  if (const auto* r = f.get<remote_error>())
    return r->error ? r->error : make_error(error_code::exception, r->what(), r->type_name);
  if (f.check<tasklet_exit>() || f.check<tasklet_killed_error>()) return caf::make_error(caf::sec::request_receiver_down);
  return make_error(error_code::exception, f.what(), exception_type(f));
}

namespace detail {

caf::error exit_error(const failure& f) { return make_error(error_code::exception, f.what(), exception_type(f)); }

failure unexpected_response(const caf::message& got, const std::type_info& want) {
  std::string shown = caf::deep_to_string(got);
  if (shown.size() > 200) shown = shown.substr(0, 200) + "...";
  const std::string wanted = want == typeid(void) ? std::string("an empty response") : ::twistlet::detail::type_name(want);
  return failure::make(unexpected_response_error("unexpected response: expected " + wanted + ", got " + shown,
                                                 caf::make_error(caf::sec::unexpected_response)));
}

}  // namespace detail

}  // namespace twistlet::actor
