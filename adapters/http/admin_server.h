#pragma once
// The admin HTTP API (ARCHITECTURE.md, "Admin HTTP API"; docs/http.md has every route,
// field and status code): entity reads at a revision, shard digests, liveness, readiness
// and Prometheus metrics, on cpp-httplib.
//
// httplib.h and nlohmann/json stay out of this header (2 s and 3 s per translation unit):
// the server hides behind a pimpl.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "actors/runtime/runtime.h"
#include "adapters/http/address.h"
#include "adapters/metrics/metrics.h"
#include "storage/status.h"

namespace ffe::http {

// AdminServer — owner: the process that serves (`ffe serve`, tests). Lifecycle: start()
// binds the address and starts a listener thread and a small worker pool; stop() (or the
// destructor) closes the socket, lets requests in progress finish and joins the threads.
// The runtime, the registry and whatever `ready` reads must outlive the server (or its
// stop()).
//
// Reads go straight to the journal (Runtime::journal()): durable state only, served on the
// worker's thread, never through the actors, so a busy shard cannot stall a read and a read
// cannot delay a command.
//
// Security: no authentication; bind to loopback (the default) unless something in front
// of it controls access.
class AdminServer {
 public:
  // `address`: "HOST:PORT" (address.h); port 0 picks a free port (see port()). `ready`:
  // answers /readyz (200 when true, 503 when false); empty means always ready. It is called
  // on the worker threads, possibly concurrently: make it cheap and thread-safe (an atomic
  // flag). Errors:
  // kInvalidArgument (a malformed address), kIoError (the address could not be bound: in
  // use, not local, ...).
  static storage::Result<std::unique_ptr<AdminServer>> start(std::string address,
                                                              runtime::Runtime& runtime,
                                                              metrics::Registry& registry,
                                                              std::function<bool()> ready);

  // The same, before the runtime exists (`ffe serve` binds first, so a port in use fails the
  // start before the data dir is touched, and /healthz answers during recovery): /healthz
  // and /metrics are served at once, /readyz is 503 and every other route 503 with
  // Retry-After until attach().
  static storage::Result<std::unique_ptr<AdminServer>> start(std::string address, metrics::Registry& registry,
                                                              std::function<bool()> ready);
  // Serves `runtime` from now on (once; it must outlive the server or its stop()).
  void attach(runtime::Runtime& runtime);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Idempotent. After it returns no handler runs and the port is closed.
  void stop();

  // The port actually bound (the one the system picked for port 0).
  std::uint16_t port() const;
  // "127.0.0.1:PORT": what `ffe get --http` takes.
  std::string address() const;

  class Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ffe::http
