// A callback that returns a deferred pauses the chain until that deferred fires.
#include <twistlet/deferred.hpp>

#include <cstdio>
#include <string>

using namespace twistlet;

int main() {
  deferred<std::string> reply;  // a pretend remote lookup: its answer arrives later

  deferred<int> request;
  request
      .add_callback([&](int id) {
        std::printf("lookup(%d) sent\n", id);
        return reply;  // a deferred<std::string>...
      })
      .add_callback([](const std::string& name) {  // ...so the next stage gets a std::string
        std::printf("hello, %s\n", name.c_str());
      });

  request.callback(7);
  std::printf("request: called=%d paused=%d\n", request.called(), request.paused());
  reply.callback("ada");  // the request's chain resumes here
  std::printf("request: paused=%d\n", request.paused());
}
