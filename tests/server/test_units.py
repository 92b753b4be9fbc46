"""The server's pure parts: the call state machine, rate limits, metrics, logs."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

import pytest

from signaling.protocol.constants import CallReason, ErrorCode
from signaling.protocol.errors import ProtocolError
from signaling.protocol.messages import Media
from signaling.server.calls import Call, CallPhase, CallTable
from signaling.server.logs import LogfmtFormatter, TurnBufferedHandler, log_event
from signaling.server.metrics import Metrics
from signaling.server.ratelimit import FailureLimiter, TokenBucket
from signaling.server.store.answers import PacedAnswers

AV = Media(True, True)


def ringing() -> Call:
    return Call("c1", "alice", "bob", AV, started_at=100.0, caller_conn=1)


def forbidden(fn, *args) -> str:
    with pytest.raises(ProtocolError) as info:
        fn(*args)
    assert info.value.code is ErrorCode.FORBIDDEN
    return info.value.message


def test_accept_binds_the_answering_connection() -> None:
    call = ringing()
    call.accept("bob", 7, now=101.0)
    assert call.phase is CallPhase.ACCEPTED
    assert call.answered_at == 101.0
    assert call.bound_conn("bob") == 7 and call.bound_conn("alice") == 1
    assert call.check_signal("alice") == "bob"
    assert call.check_signal("bob") == "alice"


def test_who_may_do_what_while_ringing() -> None:
    call = ringing()
    assert "callee" in forbidden(call.accept, "alice", 1, 0.0)
    assert "not a party" in forbidden(call.accept, "mallory", 3, 0.0)
    forbidden(call.check_decline, "alice")
    forbidden(call.check_cancel, "bob")
    forbidden(call.check_hangup, "alice")
    forbidden(call.check_signal, "bob")
    call.check_decline("bob")
    call.check_cancel("alice")


def test_after_accept_only_hangup_and_signal() -> None:
    call = ringing()
    call.accept("bob", 2, 0.0)
    forbidden(call.accept, "bob", 2, 0.0)
    forbidden(call.check_decline, "bob")
    forbidden(call.check_cancel, "alice")
    call.check_hangup("alice")
    call.check_hangup("bob")
    forbidden(call.check_hangup, "mallory")


def test_end_reports_the_phase_it_left_and_is_final() -> None:
    call = ringing()
    assert call.end(CallReason.TIMEOUT, 145.0) is CallPhase.RINGING
    assert (call.phase, call.reason, call.ended_at) == (CallPhase.ENDED, CallReason.TIMEOUT, 145.0)
    forbidden(call.end, CallReason.HANGUP, 146.0)
    forbidden(call.check_signal, "alice")


def test_detach_and_rebind() -> None:
    call = ringing()
    call.accept("bob", 2, 0.0)
    call.bind("alice", None)
    assert call.bound_conn("alice") is None
    call.bind("alice", 9)
    assert call.bound_conn("alice") == 9


def test_call_table_one_call_per_user_except_bots() -> None:
    table = CallTable(unlimited=frozenset({"echo"}))
    table.add(ringing())
    with pytest.raises(ProtocolError) as info:
        table.add(Call("c2", "carol", "bob", AV, 0.0, 3))
    assert info.value.code is ErrorCode.BUSY
    table.add(Call("c3", "carol", "echo", AV, 0.0, 3))
    table.add(Call("c4", "dave", "echo", AV, 0.0, 4))
    assert table.of_user("echo") is None and len(table) == 3
    call = table.get("c1")
    assert call is not None and table.of_user("alice") is call
    table.remove(call)
    assert table.of_user("alice") is None and table.get("c1") is None


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [None, None, None]
    assert bucket.take(0.0) == 1
    assert bucket.take(0.5) is None
    assert bucket.take(0.5) == 1


def test_failure_limiter_window() -> None:
    limiter = FailureLimiter(limit=3, window=60.0)
    for t in (0.0, 1.0, 2.0):
        assert limiter.blocked("alice", t) is None
        limiter.failed("alice", t)
    assert limiter.blocked("alice", 10.0) == 50
    assert limiter.blocked("bob", 10.0) is None
    assert limiter.blocked("alice", 60.0) is None
    limiter.failed("alice", 61.0)
    limiter.succeeded("alice")
    assert limiter.blocked("alice", 61.0) is None


def test_failure_limiter_memory_is_bounded() -> None:
    limiter = FailureLimiter(limit=1, window=60.0, max_keys=10)
    for i in range(100):
        limiter.failed(f"u{i}", 0.0)
    assert limiter.blocked("u99", 1.0) is not None
    assert limiter.blocked("u0", 1.0) is None


def test_metrics_render_prometheus_text() -> None:
    metrics = Metrics()
    metrics.gauge("parley_connections", "Open connections.", lambda: 3)
    metrics.messages_in["login"] += 2
    metrics.errors["bad_json"] += 1
    metrics.calls["hangup"] += 1
    text = metrics.render()
    assert "# TYPE parley_connections gauge\nparley_connections 3\n" in text
    assert 'parley_messages_in_total{type="login"} 2' in text
    assert 'parley_errors_total{code="bad_json"} 1' in text
    assert 'parley_calls_total{outcome="hangup"} 1' in text


def test_logs_are_one_logfmt_line_and_refuse_secrets(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="parley.server"):
        log_event("conn.open", conn=3, addr="127.0.0.1", note="two words")
    record = caplog.records[-1]
    line = LogfmtFormatter().format(record)
    assert "\n" not in line
    assert line.endswith('event=conn.open conn=3 addr=127.0.0.1 note="two words"')
    with pytest.raises(ValueError, match="secret"):
        log_event("login", password="hunter22")


class CountedStream(io.StringIO):
    """A stream that counts its writes."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("parley.server", level, __file__, 1, message, None, None)


async def test_lines_of_one_loop_turn_are_written_at_once_at_its_end() -> None:
    stream = CountedStream()
    handler = TurnBufferedHandler(stream)
    for n in range(3):
        handler.handle(_record(f"event=line{n}"))
    assert stream.getvalue() == ""  # the turn goes on
    await asyncio.sleep(0)
    assert stream.getvalue() == "event=line0\nevent=line1\nevent=line2\n"
    assert stream.writes == 1
    handler.handle(_record("event=line3"))
    handler.handle(_record("event=bad", logging.WARNING))  # at once, after what waits
    assert stream.getvalue().endswith("event=line2\nevent=line3\nevent=bad\n")
    handler.handle(_record("event=line4"))
    thread = threading.Thread(target=handler.handle, args=(_record("event=thread"),))
    thread.start()  # no loop on that thread: at once, after what waits
    thread.join()
    assert stream.getvalue().endswith("event=line4\nevent=thread\n")
    handler.handle(_record("event=last"))
    handler.flush()  # as logging.shutdown does at exit
    assert stream.getvalue().endswith("event=last\n")
    await asyncio.sleep(0)
    assert stream.getvalue().count("event=last") == 1


def test_with_no_loop_each_line_is_written_at_once() -> None:
    stream = CountedStream()
    handler = TurnBufferedHandler(stream)
    handler.handle(_record("event=one"))
    assert stream.getvalue() == "event=one\n"


def test_lines_left_by_a_loop_closed_mid_turn_go_out_with_the_next_loop() -> None:
    stream = CountedStream()
    handler = TurnBufferedHandler(stream)

    async def log(message: str) -> None:
        handler.handle(_record(message))

    first = asyncio.new_event_loop()
    first.call_soon(handler.handle, _record("event=first"))
    first.call_soon(first.stop)  # its turn's end never runs: closed now
    first.run_forever()
    first.close()
    assert stream.getvalue() == ""
    asyncio.run(log("event=second"))
    assert stream.getvalue() == "event=first\nevent=second\n"


def test_answers_left_by_a_loop_that_closed_do_not_hold_up_the_next() -> None:
    """A loop closed before its turn came leaves answers waiting; a store used on another loop
    afterwards still answers its writes (``store/answers.py``)."""
    answers = PacedAnswers(per_turn=2)
    first = asyncio.new_event_loop()
    earlier = [first.create_future() for _ in range(5)]
    for future in earlier:
        answers.result(future, 1)  # two at once, three wait for a turn that never comes
    first.close()
    assert [future.done() for future in earlier] == [True, True, False, False, False]

    async def later() -> list[int]:
        loop = asyncio.get_running_loop()
        mine = [loop.create_future() for _ in range(3)]
        for future in mine:
            answers.result(future, 2)
        return await asyncio.wait_for(asyncio.gather(*mine), 5)

    assert asyncio.run(later()) == [2, 2, 2]
