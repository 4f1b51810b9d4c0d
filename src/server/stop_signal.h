// SIGINT and SIGTERM ask the server to stop cleanly (finish or cancel the running job, tell
// the ranks to exit, close the sockets) instead of killing it mid-collective. The handler
// only sets a flag - the one thing a signal handler may safely do - and the job worker and
// the step hook poll it. SIGPIPE is ignored: a client that hangs up is an error on its
// socket, not the end of the server.
#pragma once

#include <string>

namespace raylight::server {

void install_stop_signals();
bool stop_signalled();
// A file the signal handler deletes at once (unlink is async-signal-safe): the port file,
// which must not outlive a server that mpirun kills right after signalling it (as it does
// when another rank dies). "" forgets it.
void unlink_on_stop_signal(const std::string& path);

}  // namespace raylight::server
