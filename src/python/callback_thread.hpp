#pragma once
// Python done-callbacks run on one thread of the module's own, started at the first one, never
// on the backend thread that finished the transfer.
#include <functional>

namespace kvbm::python {

// Queues `call` for the callback thread (which takes the GIL inside `call` as it needs).
void run_on_callback_thread(std::function<void()> call);

}  // namespace kvbm::python
