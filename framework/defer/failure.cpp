// failure descriptions and readable type names.
#include <twistlet/failure.hpp>

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

namespace twistlet {

namespace detail {

std::string type_name(const std::type_info& t) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(t.name(), nullptr, nullptr, &status),
                                              std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(t.name());
}

}  // namespace detail

std::string failure::what() const {
  try {
    std::rethrow_exception(e_);
  } catch (const std::exception& e) {
    return e.what();
  } catch (const tasklet_exit&) {
    return "tasklet_exit: the tasklet was killed";
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    return "exception of type " + (t ? detail::type_name(*t) : std::string("<unknown>"));
  }
}

}  // namespace twistlet
