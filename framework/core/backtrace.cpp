// Turning return addresses into text, for introspection dumps and stall reports. This runs
// only when someone looks (never in a signal handler): symbolising reads DWARF line tables,
// through Boost.Stacktrace's libbacktrace backend, so that static functions and file:line
// come out even for executables not linked with -rdynamic.
#define BOOST_STACKTRACE_LINK
#include <boost/stacktrace/frame.hpp>

#include <dlfcn.h>

#include <cstdio>
#include <string>

#include "core/scheduler.hpp"

namespace twistlet::detail {

std::string format_frames(void* const* frames, std::size_t n, const char* indent) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    boost::stacktrace::frame f(frames[i]);
    std::string name = f.name();
    char head[64];
    std::snprintf(head, sizeof head, "#%zu %p ", i, frames[i]);
    out += indent;
    out += head;
    if (name.empty()) {
      // No symbol: the module and offset are what addr2line needs.
      Dl_info info{};
      if (::dladdr(frames[i], &info) && info.dli_fname) {
        char off[40];
        std::snprintf(off, sizeof off, "+0x%zx",
                      static_cast<std::size_t>(static_cast<const char*>(frames[i]) -
                                               static_cast<const char*>(info.dli_fbase)));
        name = std::string("in ") + info.dli_fname + off;
      } else {
        name = "??";
      }
    }
    out += name;
    if (const std::size_t line = f.source_line(); line != 0) {
      out += " at ";
      out += f.source_file();
      out += ':';
      out += std::to_string(line);
    }
    out += '\n';
  }
  return out;
}

}  // namespace twistlet::detail
