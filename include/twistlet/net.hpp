// twistlet net layer: TCP and UDP in blocking style inside tasklets, listeners that run one
// tasklet per connection, and Twisted-style protocols driven by the reactor.
//
// Two ways to write a network program, over the same reactor:
//
//  - Sequential: a tasklet calls stream::read_line(), stream::write(), ... and blocks while the
//    reactor serves everyone else. listen_tcp() with a `void(stream)` handler starts one
//    tasklet per connection. Every blocking call has a deferred-returning async_ twin for
//    reactor-level code; cancel() or add_timeout() on it cancels the Asio operation.
//  - Event-driven (Twisted): a protocol receives connection_made / data_received /
//    connection_lost calls in the reactor tasklet and writes through its transport, which never
//    blocks. listen_tcp() or connect_tcp() with a protocol_factory.
//
// Errors are exceptions derived from net::error (a std::runtime_error carrying the
// std::error_code and the OS message): end_of_stream, connection_reset, connection_refused,
// connection_closed, idle_timeout, line_too_long, resolve_error. The other failures of the
// operating system arrive as plain net::error.
//
// Blocking calls follow the bridge's rules: they throw reactor_blocked_error in the reactor
// tasklet; in the main tasklet outside reactor::run() they drive the reactor until they can
// return; killing a tasklet blocked in one raises tasklet_exit there and cancels exactly that
// operation (see each call for the state it leaves behind).
//
// Net objects are single-thread objects of their reactor's thread. Destroying the reactor
// closes whatever net objects are still open (their operations then throw connection_closed).
#pragma once

#include <twistlet/bridge.hpp>
#include <twistlet/deferred.hpp>
#include <twistlet/failure.hpp>
#include <twistlet/reactor.hpp>
#include <twistlet/tasklet.hpp>
#include <twistlet/time.hpp>

#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace twistlet::net {

/// A TCP address and port (Asio's).
using tcp_endpoint = asio::ip::tcp::endpoint;
/// A UDP address and port (Asio's).
using udp_endpoint = asio::ip::udp::endpoint;

/// The longest line read_line() and line_receiver accept by default, in bytes without the
/// line terminator (Twisted's LineReceiver.MAX_LENGTH).
inline constexpr std::size_t default_max_line_length = 16384;

// ---- errors ------------------------------------------------------------------------------------

/// Every failure of the net layer. what() names the operation and carries the OS message;
/// code() is the error code it came from.
class error : public std::runtime_error {
 public:
  /// An error with message `what` (the operation and the OS message) for `code`.
  error(const std::string& what, std::error_code code) : std::runtime_error(what), code_(code) {}
  /// The error code (OS errors in the system category, Asio's own in Asio's categories).
  const std::error_code& code() const noexcept { return code_; }

 private:
  std::error_code code_;
};

/// The peer closed its sending side (orderly shutdown): nothing more will arrive. Sticky: every
/// later read of the stream throws it again once buffered data is exhausted. Code: asio::error::eof.
struct end_of_stream : error {
  using error::error;
};

/// The peer reset the connection, or it broke while writing (ECONNRESET, EPIPE,
/// ECONNABORTED). Sticky on the side that saw it.
struct connection_reset : error {
  using error::error;
};

/// Nobody listens at the address connected to (ECONNREFUSED).
struct connection_refused : error {
  using error::error;
};

/// An operation on a stream, socket, transport or listener that was closed on this side
/// (close(), an escaping handler exception, or the reactor's destruction). Code:
/// asio::error::bad_descriptor, as Asio reports for a closed socket.
struct connection_closed : error {
  using error::error;
};

/// The stream's idle timeout expired: nothing was received for that long, and the connection
/// was closed. Code: asio::error::timed_out.
struct idle_timeout : error {
  using error::error;
};

/// A line longer than the maximum arrived (read_line). The bytes stay buffered in the stream.
/// Code: asio::error::message_size.
struct line_too_long : error {
  using error::error;
};

/// A host name could not be resolved (the resolver's error: host not found, try again, ...).
struct resolve_error : error {
  using error::error;
};

namespace detail {
class stream_impl;
class listener_impl;
class protocol_conn;
class udp_impl;
}  // namespace detail

// ---- options -----------------------------------------------------------------------------------

/// How connect_tcp() sets up the stream.
struct connect_options {
  /// Disable Nagle's algorithm (TCP_NODELAY): small writes leave at once.
  bool no_delay = true;
  /// > 0: close the connection when nothing is received for this long (see
  /// stream::set_idle_timeout()).
  duration idle_timeout = duration::zero();
};

/// How listen_tcp() listens and sets up accepted connections.
struct listen_options {
  /// > 0: close a connection when nothing is received from it for this long.
  duration idle_timeout = duration::zero();
  /// Queue length for connections not yet accepted.
  int backlog = asio::socket_base::max_listen_connections;
  /// SO_REUSEADDR on the listening socket (rebinding a port in TIME_WAIT).
  bool reuse_address = true;
  /// TCP_NODELAY on accepted connections.
  bool no_delay = true;
  /// Stack size of each connection's tasklet (0: the default); see tasklet_options.
  std::size_t stack_size = 0;
};

// ---- streams -----------------------------------------------------------------------------------

/// A connected TCP stream. A copyable handle: copies refer to the same connection, which
/// closes when the last handle goes (or on close()).
///
/// Reads and writes are independent: one tasklet may block reading while another writes.
/// Several tasklets reading (or writing) the same stream are served one whole call at a time,
/// first come first served, so a read_exactly() or write() is never interleaved with another.
///
/// Buffering: read_some() and read_exactly() move data straight into the caller's buffer; the
/// stream's own buffer exists only while it holds bytes (for read_line(), or bytes a failed or
/// cancelled read gave back) and is freed when it empties before a wait.
///
/// Cancellation: a read never loses data. A read that fails or is cancelled (its tasklet
/// killed, or its async_ deferred cancelled or timed out) consumes nothing: the bytes it had
/// taken, including any the kernel delivered to it in the meantime, go back to the front of
/// the stream's buffer and the next read returns them. The connection stays open and usable.
/// A cancelled write either sent nothing (the stream is unaffected) or sent part of its data;
/// then the peer has seen a truncated message, so later writes throw net::error
/// (asio::error::operation_aborted) while reads carry on.
class stream {
 public:
  /// An empty handle: every operation but the observers throws std::logic_error.
  stream() noexcept = default;
  /// Wraps a connected Asio socket of `r`'s context (makes it non-blocking, TCP_NODELAY per
  /// `opts`).
  /// Throws net::error if the socket is not open or not connected.
  stream(reactor& r, asio::ip::tcp::socket socket, connect_options opts = {});
  /// Another handle to the same connection.
  stream(const stream& other) noexcept;
  /// Takes over `other`'s handle, leaving it empty.
  stream(stream&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}
  /// Makes this another handle to `other`'s connection (dropping the one it had).
  stream& operator=(const stream& other) noexcept {
    stream(other).swap(*this);
    return *this;
  }
  /// Takes over `other`'s handle (dropping the one this had), leaving `other` empty.
  stream& operator=(stream&& other) noexcept {
    stream(std::move(other)).swap(*this);
    return *this;
  }
  /// The last handle closes the connection.
  ~stream();
  /// Exchanges the connections the two handles refer to.
  void swap(stream& other) noexcept { std::swap(impl_, other.impl_); }

  /// Reads at least one byte (at most buffer.size()) and returns how many; returns 0 at once for
  /// an empty buffer. Takes buffered bytes first, else reads straight into `buffer`.
  /// Errors: end_of_stream; connection_reset; connection_closed; idle_timeout; net::error for
  /// other OS errors; reactor_blocked_error in the reactor tasklet; tasklet_exit if killed (the
  /// read is cancelled, nothing is lost); std::logic_error for an empty handle.
  std::size_t read_some(asio::mutable_buffer buffer);

  /// Fills `buffer` completely, or consumes nothing: if the stream ends or fails first, or the
  /// tasklet is killed, the bytes already taken go back into the stream's buffer.
  /// Errors: as read_some(); end_of_stream if the stream ends before `buffer` is full.
  void read_exactly(asio::mutable_buffer buffer);

  /// Reads one line and returns it without its terminator: a line ends at "\n", and a "\r" just
  /// before it is dropped too. Bytes after the line stay buffered.
  /// Errors: line_too_long when more than `max_length` bytes (terminator excluded) arrive
  /// without a line end (the bytes stay buffered); end_of_stream at the end of the stream (an
  /// unterminated last line stays buffered, readable with read_some()); otherwise as
  /// read_some().
  std::string read_line(std::size_t max_length = default_max_line_length);

  /// Writes all of `data`, blocking while the kernel's send buffer is full.
  /// Errors: connection_reset (the peer is gone); connection_closed; net::error after
  /// shutdown_write() (asio::error::shut_down) or after a write cancelled part-way
  /// (asio::error::operation_aborted), and for other OS errors; reactor_blocked_error in the
  /// reactor tasklet; tasklet_exit if killed (see the class comment); std::logic_error for an
  /// empty handle.
  void write(asio::const_buffer data);
  /// write() of the bytes of `data`.
  void write(std::string_view data) { write(asio::const_buffer(data.data(), data.size())); }

  /// Sends end-of-stream to the peer (TCP FIN) once the writes already under way are done;
  /// reading goes on. Later writes throw net::error (asio::error::shut_down). No-op if already
  /// shut down.
  /// Errors: as write(); connection_reset if the peer is already gone.
  void shutdown_write();

  /// Closes the connection now. Tasklets blocked on it wake with connection_closed; buffered
  /// data is discarded. Idempotent; no-op on an empty handle.
  void close() noexcept;

  /// read_some() of at most `max_size` bytes for reactor-level code: the deferred fires with
  /// the bytes (the read runs in a new tasklet, so it may be called from the reactor tasklet).
  /// cancel(), or an add_timeout() that expires, cancels the read without losing data (the
  /// deferred errbacks cancelled_error, or timeout_error).
  /// Errbacks: as read_some() throws.
  deferred<std::string> async_read_some(std::size_t max_size = 65536);
  /// read_exactly() of `size` bytes, as a deferred (cancellation as async_read_some()).
  deferred<std::string> async_read_exactly(std::size_t size);
  /// read_line() as a deferred (cancellation as async_read_some()).
  deferred<std::string> async_read_line(std::size_t max_length = default_max_line_length);
  /// write() of `data` as a deferred (it owns the bytes). cancel() or a timeout cancels the
  /// write with the effects the class comment describes.
  deferred<void> async_write(std::string data);

  /// > 0: close the connection when nothing has been received for `timeout` (counted from now
  /// and from every arrival of data). Blocked reads then throw idle_timeout, and so does every
  /// later operation. zero() turns it off.
  /// Errors: std::logic_error for an empty handle.
  void set_idle_timeout(duration timeout);
  /// The idle timeout (zero(): none).
  duration idle_timeout() const noexcept;

  /// Open: not closed on this side, nor by an idle timeout (a peer's end of stream does not
  /// close it).
  bool is_open() const noexcept;
  /// Bytes received and buffered but not yet read.
  std::size_t buffered() const noexcept;
  /// This side's address (kept from the moment of connection, also after close()).
  /// Errors: std::logic_error for an empty handle.
  const tcp_endpoint& local_endpoint() const;
  /// The peer's address (kept from the moment of connection, also after close()).
  /// Errors: std::logic_error for an empty handle.
  const tcp_endpoint& remote_endpoint() const;
  /// The underlying Asio socket, for socket options (SO_LINGER, buffer sizes, ...). Reading or
  /// writing through it directly bypasses the stream's buffering and ordering.
  /// Errors: connection_closed after close(); std::logic_error for an empty handle.
  asio::ip::tcp::socket& socket();
  /// The reactor the stream belongs to.
  /// Errors: std::logic_error for an empty handle.
  reactor& get_reactor() const;

  /// Not empty.
  explicit operator bool() const noexcept { return impl_ != nullptr; }
  /// Both refer to the same connection.
  friend bool operator==(const stream& a, const stream& b) noexcept { return a.impl_ == b.impl_; }

  /// For the framework: a handle to `impl` (taking a new reference).
  static stream from_impl(detail::stream_impl* impl) noexcept;
  /// For the framework: the connection behind the handle.
  detail::stream_impl* impl() const noexcept { return impl_; }

 private:
  detail::stream_impl& checked() const;
  detail::stream_impl* impl_ = nullptr;
};

/// Resolves `host` (a name or a numeric address) for `port` without blocking the reactor
/// (Asio's async_resolve); fires with every address found, in the resolver's order. A numeric
/// address fires at once. cancel() abandons the lookup.
/// Errbacks: resolve_error; cancelled_error when cancelled.
deferred<std::vector<tcp_endpoint>> resolve_tcp(reactor& r, std::string host, std::uint16_t port);

/// Connects to `host`:`port`, trying each resolved address in turn (so "localhost" works
/// whether the server listens on ::1 or 127.0.0.1). Fires with the connected stream.
/// cancel() (or a timeout) aborts the lookup or the connection attempt.
/// Errbacks: resolve_error; connection_refused when no address accepted (the last address's
/// error); net::error for other OS errors (network unreachable, ...); cancelled_error when
/// cancelled.
deferred<stream> connect_tcp(reactor& r, std::string host, std::uint16_t port, connect_options opts = {});
/// Connects to `remote`. Errbacks as above, without resolve_error.
deferred<stream> connect_tcp(reactor& r, tcp_endpoint remote, connect_options opts = {});

/// Blocking connect_tcp() for tasklets: block_on(connect_tcp(...)).
/// Errors: as connect_tcp() errbacks; block_on()'s (reactor_blocked_error in the reactor
/// tasklet; tasklet_exit if killed, which aborts the attempt).
stream connect(reactor& r, const std::string& host, std::uint16_t port, connect_options opts = {});
/// Blocking connect_tcp() to `remote`.
stream connect(reactor& r, const tcp_endpoint& remote, connect_options opts = {});

// ---- listeners ---------------------------------------------------------------------------------

/// What listen_tcp() runs for each connection, in a new tasklet of its own.
///
/// The handler may block freely. When it returns, its stream handle is dropped (the connection
/// closes unless the handler kept another handle elsewhere). An exception escaping it closes
/// the connection and is reported through the unhandled-error handler
/// (report_unhandled_error()), except end_of_stream and idle_timeout (the ordinary ends of a
/// connection) and tasklet_exit (a kill), which close it silently. The listener serves on.
using connection_handler = std::function<void(stream)>;

class protocol_factory;

/// A listening TCP socket. Move-only; destroying it stops accepting (as close()). Connections
/// already accepted are not affected by either.
class listener {
 public:
  /// An empty listener.
  listener() noexcept = default;
  /// Takes over `other`'s socket, leaving it empty.
  listener(listener&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}
  /// Stops accepting on this listener's socket (as close()), then takes over `other`'s.
  listener& operator=(listener&& other) noexcept;
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;
  /// Stops accepting.
  ~listener();

  /// Stops accepting and closes the listening socket: new connection attempts are refused.
  /// Idempotent; no-op on an empty listener.
  void close() noexcept;
  /// Accepting.
  bool is_open() const noexcept;
  /// The bound address; its port is the one the system picked if 0 was asked for (kept after
  /// close()).
  /// Errors: std::logic_error for an empty listener.
  const tcp_endpoint& local_endpoint() const;
  /// local_endpoint().port().
  std::uint16_t port() const { return local_endpoint().port(); }
  /// Connections accepted by this listener that are still being served (handler running, or
  /// protocol not yet told connection_lost).
  std::size_t connection_count() const noexcept;

  /// For the framework.
  explicit listener(detail::listener_impl* impl) noexcept : impl_(impl) {}

 private:
  detail::listener_impl* impl_ = nullptr;
};

/// Listens on `local` (port 0 picks a free port; see listener::port()) and runs `handler(s)`
/// in a new tasklet for each accepted connection (see connection_handler). The tasklet is named
/// "tcp <remote address>". Accept failures (out of file descriptors, ...) are reported through
/// the unhandled-error handler and accepting resumes shortly after.
/// Errors: net::error if the address cannot be bound (address in use, permission, ...);
/// std::invalid_argument for an empty handler.
listener listen_tcp(reactor& r, const tcp_endpoint& local, connection_handler handler, listen_options opts = {});
/// listen_tcp() on every interface (IPv6 and IPv4 where available) at `port`.
listener listen_tcp(reactor& r, std::uint16_t port, connection_handler handler, listen_options opts = {});
/// Listens on `local` and gives each connection a protocol from `factory` (see protocol).
/// Errors: as above; std::invalid_argument for a null factory.
listener listen_tcp(reactor& r, const tcp_endpoint& local, std::shared_ptr<protocol_factory> factory,
                    listen_options opts = {});
/// Listens on every interface at `port` with protocols from `factory`.
listener listen_tcp(reactor& r, std::uint16_t port, std::shared_ptr<protocol_factory> factory,
                    listen_options opts = {});

// ---- protocols (Twisted style) -------------------------------------------------------------

/// A protocol's handle on its connection (Twisted's ITransport). A copyable handle. It never
/// blocks: write() sends what the kernel takes now and queues the rest. After the connection
/// is lost every call is a no-op, connected() is false, pending_bytes() is 0, and the
/// endpoints keep their values.
class transport {
 public:
  /// An empty transport: calls are no-ops, connected() is false.
  transport() noexcept = default;
  /// Another handle to the same connection.
  transport(const transport& other) noexcept;
  /// Takes over `other`'s handle, leaving it empty.
  transport(transport&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}
  /// Makes this another handle to `other`'s connection (dropping the one it had).
  transport& operator=(const transport& other) noexcept {
    transport(other).swap(*this);
    return *this;
  }
  /// Takes over `other`'s handle (dropping the one this had), leaving `other` empty.
  transport& operator=(transport&& other) noexcept {
    transport(std::move(other)).swap(*this);
    return *this;
  }
  /// Drops the handle; the connection itself lives on (the protocol machinery owns it).
  ~transport();
  /// Exchanges the connections the two handles refer to.
  void swap(transport& other) noexcept { std::swap(impl_, other.impl_); }

  /// Queues `data` for sending, in order. Ignored once lose_connection() or
  /// abort_connection() was called or the connection is lost. A write error loses the
  /// connection (connection_lost receives it).
  void write(std::string_view data);
  /// Closes the connection once the queued data is sent; data arriving meanwhile is dropped.
  /// connection_lost() follows with connection_closed.
  void lose_connection();
  /// Closes the connection now, dropping queued data. connection_lost() follows with
  /// connection_closed.
  void abort_connection();
  /// Open and neither losing nor aborting.
  bool connected() const noexcept;
  /// Bytes queued and not yet taken by the kernel (0 once the connection is lost: they were
  /// dropped).
  std::size_t pending_bytes() const noexcept;
  /// > 0: abort the connection (connection_lost receives idle_timeout) when nothing arrives
  /// for `timeout`; zero() turns it off.
  void set_idle_timeout(duration timeout);
  /// This side's address (a default endpoint for an empty transport).
  tcp_endpoint local_endpoint() const;
  /// The peer's address (a default endpoint for an empty transport).
  tcp_endpoint remote_endpoint() const;

  /// Not empty.
  explicit operator bool() const noexcept { return impl_ != nullptr; }

  /// For the framework.
  explicit transport(detail::protocol_conn* impl) noexcept;

 private:
  detail::protocol_conn* impl_ = nullptr;
};

/// The base of event-driven connection handlers (Twisted's Protocol). The reactor calls the
/// virtual functions in the reactor tasklet, so they must not block (use deferreds, or start
/// a tasklet with deferred_tasklet()). Order: connection_made() once, data_received() any
/// number of times, connection_lost() once. The connection keeps the protocol alive until
/// connection_lost() has returned.
///
/// An exception escaping a callback is reported through the unhandled-error handler, the
/// connection is aborted, and connection_lost() receives that exception as its reason.
class protocol {
 public:
  virtual ~protocol() = default;

  /// The connection is up; transport() works from here on.
  virtual void connection_made() {}
  /// Bytes arrived. `data` is valid only during the call.
  virtual void data_received(std::string_view data) { (void)data; }
  /// The connection is gone; `reason` says why: end_of_stream (the peer closed; data queued
  /// for it was sent first), connection_closed (lose_connection(), abort_connection()),
  /// connection_reset, idle_timeout, or the exception a callback threw. Never called from
  /// inside another callback of the same protocol.
  virtual void connection_lost(const failure& reason) { (void)reason; }

  /// The connection's transport (an empty one before connection_made()).
  net::transport& transport() noexcept { return transport_; }

 private:
  friend class detail::protocol_conn;
  net::transport transport_;
};

/// Makes the protocol for each connection (Twisted's Factory).
class protocol_factory {
 public:
  virtual ~protocol_factory() = default;
  /// A new protocol for a connection with `remote`; nullptr refuses the connection (it is
  /// closed at once). An exception is reported and refuses it too.
  virtual std::shared_ptr<protocol> build_protocol(const tcp_endpoint& remote) = 0;
};

namespace detail {
template <class P, class... A>
class simple_factory final : public protocol_factory {
 public:
  template <class... B>
  explicit simple_factory(B&&... args) : args_(std::forward<B>(args)...) {}
  std::shared_ptr<protocol> build_protocol(const tcp_endpoint&) override {
    return std::apply([](const A&... a) { return std::make_shared<P>(a...); }, args_);
  }

 private:
  std::tuple<A...> args_;
};
}  // namespace detail

/// A factory that builds `std::make_shared<P>(args...)` for each connection, from copies of
/// `args`.
template <class P, class... A>
std::shared_ptr<protocol_factory> make_factory(A&&... args) {
  static_assert(std::is_base_of_v<protocol, P>, "make_factory<P>: P must derive from net::protocol");
  return std::make_shared<detail::simple_factory<P, std::decay_t<A>...>>(std::forward<A>(args)...);
}

/// Connects to `host`:`port` as connect_tcp() does and runs a protocol from `factory` on the
/// connection; fires with that protocol once connection_made() has returned.
/// Errbacks: as connect_tcp(); std::invalid_argument if the factory returns nullptr; the
/// exception connection_made() or build_protocol() threw (then not reported separately).
deferred<std::shared_ptr<protocol>> connect_tcp(reactor& r, std::string host, std::uint16_t port,
                                                std::shared_ptr<protocol_factory> factory, connect_options opts = {});

/// Runs `proto` on a new connection to `host`:`port` (Twisted's connectProtocol); fires with
/// `proto` once its connection_made() has returned.
/// Errbacks: as connect_tcp().
template <class P>
deferred<std::shared_ptr<P>> connect_protocol(reactor& r, std::string host, std::uint16_t port,
                                              std::shared_ptr<P> proto, connect_options opts = {}) {
  static_assert(std::is_base_of_v<protocol, P>, "connect_protocol: P must derive from net::protocol");
  struct one_shot final : protocol_factory {
    std::shared_ptr<protocol> p;
    std::shared_ptr<protocol> build_protocol(const tcp_endpoint&) override { return std::exchange(p, nullptr); }
  };
  auto f = std::make_shared<one_shot>();
  f->p = proto;
  return connect_tcp(r, std::move(host), port, std::move(f), opts)
      .add_callback([proto](const std::shared_ptr<protocol>&) { return proto; });
}

/// A protocol that splits the incoming bytes into lines (Twisted's LineReceiver). A line ends
/// at "\n"; a "\r" just before it is dropped too, so both "\r\n" and "\n" peers work.
class line_receiver : public protocol {
 public:
  /// A receiver accepting lines of up to `max_length` bytes (terminator excluded).
  explicit line_receiver(std::size_t max_length = default_max_line_length) : max_length_(max_length) {}

  /// A complete line arrived, without its terminator. `line` is valid only during the call.
  /// Lines that arrive after lose_connection() or abort_connection() are not delivered.
  virtual void line_received(std::string_view line) = 0;
  /// More than max_length() bytes arrived without a line end (or a longer line ended).
  /// `partial` holds the buffered bytes, which are then dropped. The default loses the
  /// connection, as Twisted does.
  virtual void line_length_exceeded(std::string_view partial);

  /// Writes `line` and "\r\n".
  void send_line(std::string_view line);
  /// The longest acceptable line, terminator excluded.
  std::size_t max_length() const noexcept { return max_length_; }
  /// Changes the limit; it applies from the next data_received().
  void set_max_length(std::size_t n) noexcept { max_length_ = n; }

  /// Splits `data` into lines; not meant to be overridden (override line_received()).
  void data_received(std::string_view data) final;

 private:
  std::string buffer_;
  std::size_t max_length_;
};

// ---- UDP ---------------------------------------------------------------------------------------

/// A received datagram (async_receive_from()).
struct datagram {
  /// The datagram's payload (at most the max_size asked for; the rest was discarded).
  std::string data;
  /// Where it came from: reply to this endpoint.
  udp_endpoint sender;
};

/// A UDP socket. A copyable handle; the last one closes it. One receive and one send may be
/// under way at a time; further callers queue in order.
///
/// A receive waits for the socket to become readable and only then takes a datagram, so a
/// cancelled or killed receive never consumes one.
class udp_socket {
 public:
  /// An empty handle.
  udp_socket() noexcept = default;
  /// Opens a socket bound to `local` (port 0 picks a free port).
  /// Errors: net::error if it cannot be bound.
  udp_socket(reactor& r, const udp_endpoint& local);
  /// Another handle to the same socket.
  udp_socket(const udp_socket& other) noexcept;
  /// Takes over `other`'s handle, leaving it empty.
  udp_socket(udp_socket&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}
  /// Makes this another handle to `other`'s socket (dropping the one it had).
  udp_socket& operator=(const udp_socket& other) noexcept {
    udp_socket(other).swap(*this);
    return *this;
  }
  /// Takes over `other`'s handle (dropping the one this had), leaving `other` empty.
  udp_socket& operator=(udp_socket&& other) noexcept {
    udp_socket(std::move(other)).swap(*this);
    return *this;
  }
  /// The last handle closes the socket.
  ~udp_socket();
  /// Exchanges the sockets the two handles refer to.
  void swap(udp_socket& other) noexcept { std::swap(impl_, other.impl_); }

  /// Receives one datagram into `buffer`, stores its origin in `sender`, and returns its size;
  /// the part of a datagram that does not fit is discarded (as the OS does).
  /// Errors: connection_closed; net::error for OS errors; reactor_blocked_error in the reactor
  /// tasklet; tasklet_exit if killed (no datagram is consumed); std::logic_error for an empty
  /// handle.
  std::size_t receive_from(asio::mutable_buffer buffer, udp_endpoint& sender);
  /// Sends `data` as one datagram to `destination`, waiting while the send buffer is full.
  /// Errors: connection_closed; net::error for OS errors (message too long, unreachable, ...);
  /// reactor_blocked_error; tasklet_exit if killed (nothing is sent); std::logic_error for an
  /// empty handle.
  void send_to(asio::const_buffer data, const udp_endpoint& destination);
  /// send_to() of the bytes of `data`.
  void send_to(std::string_view data, const udp_endpoint& destination) {
    send_to(asio::const_buffer(data.data(), data.size()), destination);
  }

  /// receive_from() as a deferred (datagrams up to `max_size` bytes). cancel() or a timeout
  /// cancels the wait; no datagram is consumed.
  deferred<datagram> async_receive_from(std::size_t max_size = 65536);
  /// send_to() as a deferred.
  deferred<void> async_send_to(std::string data, udp_endpoint destination);

  /// Closes the socket; blocked callers wake with connection_closed. Idempotent.
  void close() noexcept;
  /// Not closed.
  bool is_open() const noexcept;
  /// The bound address (kept after close()).
  /// Errors: std::logic_error for an empty handle.
  const udp_endpoint& local_endpoint() const;
  /// The underlying Asio socket, for socket options.
  /// Errors: connection_closed after close(); std::logic_error for an empty handle.
  asio::ip::udp::socket& socket();

  /// Not empty.
  explicit operator bool() const noexcept { return impl_ != nullptr; }

 private:
  detail::udp_impl& checked() const;
  detail::udp_impl* impl_ = nullptr;
};

}  // namespace twistlet::net
