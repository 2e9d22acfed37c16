"""``await handle``: a transfer's end delivered to the running asyncio loop."""
import asyncio


def await_handle(handle):
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def finish(error):
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    # The callback runs on kvbm's callback thread: call_soon_threadsafe hands the outcome to the
    # loop's thread.
    handle.add_done_callback(lambda error: loop.call_soon_threadsafe(finish, error))
    return _until_done(handle, future)


def _until_done(handle, future):
    # The handle stays referenced here until the await ends: dropping it earlier would wait for
    # the transfer in its destructor, on the loop's thread.
    result = yield from future
    del handle
    return result
