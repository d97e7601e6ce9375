"""The hot path's pipelined Redis connection (apps/core/resp.py, ADR 0130): it answers as redis-py's pipeline and
scripts do, keeps concurrent round trips apart, reconnects after a lost connection or a timeout, raises redis-py's
exception types, and stands aside for a URL it does not speak to."""

import asyncio

import pytest
import redis.asyncio
import redis.connection
import redis.exceptions

from apps.core import redis as core_redis
from apps.core import resp

INCR_AND_SAY = core_redis.Script("return {redis.call('INCR', KEYS[1]), ARGV[1], false}")


def _names(*parts):
    names = [core_redis.key("test", "resp", *part) for part in parts]
    core_redis.client().delete(*names)
    return names


def test_commands_are_written_byte_for_byte_as_redis_py_packs_them():
    commands = [("SET", "k", 7), ("EXPIRE", b"k", 1.5), ("EVALSHA", "abc", 2, "k1", "k2", "é", b"\x00\r\n", "")]
    packer = redis.connection.Connection()

    expected = b"".join(b"".join(packer.pack_command(*command)) for command in commands)

    assert resp.encode(*commands) == expected


def test_a_hot_pipeline_answers_what_redis_pys_pipeline_answers():
    hot_names, py_names = _names(("h", 1), ("h", 2)), _names(("p", 1), ("p", 2))

    def queue(pipe, counter, absent):
        pipe.incr(counter).incr(counter, 5).expire(counter, 60).expire(absent, 60).get(counter).get(absent)
        pipe.decr(counter, 2)
        INCR_AND_SAY.queue(pipe, [counter], ["hello"])

    async def both():
        hot = core_redis.hot_pipeline()
        assert isinstance(hot, core_redis.HotPipeline)
        queue(hot, *hot_names)
        py = core_redis.async_client().pipeline(transaction=False)
        queue(py, *py_names)
        return await hot.execute(raise_on_error=False), await py.execute(raise_on_error=False)

    hot_answers, py_answers = asyncio.run(both())
    if isinstance(py_answers[-1], redis.exceptions.NoScriptError):  # this Redis had not seen the script yet
        assert isinstance(hot_answers[-1], redis.exceptions.NoScriptError)
        hot_answers, py_answers = hot_answers[:-1], py_answers[:-1]
    assert hot_answers == py_answers
    assert hot_answers[:7] == [1, 6, True, False, b"6", None, 4]


def test_a_script_redis_does_not_have_is_sent_whole_and_then_runs_by_its_sha():
    (counter,) = _names(("script",))
    core_redis.client().script_flush()

    async def twice():
        return await INCR_AND_SAY.arun([counter], ["hi"]), await INCR_AND_SAY.arun([counter], ["hi"])

    assert asyncio.run(twice()) == ([1, b"hi", None], [2, b"hi", None])


def test_commands_sent_now_are_in_redis_before_anything_is_awaited_and_answer_as_a_round_trip_would():
    """What the gateway's record relies on (ADR 0133): the write leaves the process at once."""
    (counter,) = _names(("now",))

    async def go():
        connection = core_redis._hot_connection()
        not_up = connection.send_now([("INCRBY", counter, 1)])
        await connection.execute([("PING",)])
        sent = connection.send_now([("INCRBY", counter, 2), ("GET", counter)])
        seen_by_another_client = core_redis.client().get(counter)  # nothing awaited since the write
        return not_up, sent.out, seen_by_another_client, await sent.replies()

    not_up, out, seen, replies = asyncio.run(go())
    assert not_up is None  # no connection on this loop yet: the caller runs the round trip instead
    assert out and seen == b"2" and replies == [2, b"2"]


def test_a_script_sent_now_that_redis_does_not_have_is_sent_whole_when_its_answer_is_read():
    (counter,) = _names(("script-now",))
    core_redis.client().script_flush()

    async def go():
        connection = core_redis._hot_connection()
        await connection.execute([("PING",)])
        sent = INCR_AND_SAY.send_now([counter], ["hey"])
        return await INCR_AND_SAY.answer(sent, [counter], ["hey"])

    assert asyncio.run(go()) == [1, b"hey", None]


def test_a_failed_command_is_raised_or_left_in_its_place():
    (text,) = _names(("text",))
    core_redis.client().set(text, "not a number")

    async def run(raise_on_error):
        return await core_redis.hot_pipeline().get(text).incr(text).execute(raise_on_error=raise_on_error)

    got, failed = asyncio.run(run(False))
    assert got == b"not a number" and isinstance(failed, redis.exceptions.ResponseError)
    with pytest.raises(redis.exceptions.ResponseError, match="not an integer"):
        asyncio.run(run(True))


def test_concurrent_round_trips_on_one_connection_each_get_their_own_replies():
    names = _names(*[("many", n) for n in range(200)])

    async def one(n, name):
        answers = await core_redis.hot_pipeline().incr(name, n).get(name).execute()
        return n, answers

    async def all_of_them():
        return await asyncio.gather(*(one(n, name) for n, name in enumerate(names)))

    for n, answers in asyncio.run(all_of_them()):
        assert answers == [n, str(n).encode()]


def test_a_lost_connection_fails_what_waits_on_it_and_the_next_round_trip_reconnects():
    (counter,) = _names(("lost",))

    async def run():
        first = await core_redis.hot_pipeline().incr(counter).execute()
        connection = core_redis._hot_connection()
        (await connection.ready).transport.abort()
        await asyncio.sleep(0)
        second = await core_redis.hot_pipeline().incr(counter).execute()
        return first, second

    assert asyncio.run(run()) == ([1], [2])


def test_a_round_trip_past_its_timeout_raises_redis_timeout_and_the_connection_is_made_again():
    (queue_name,) = _names(("blocked",))
    connection = resp.Connection(core_redis.settings.REDIS_URL, timeout=0.2, connect_timeout=2)

    async def run():
        with pytest.raises(redis.exceptions.TimeoutError):
            await connection.execute([("BLPOP", queue_name, 2)])
        return await connection.execute([("PING",)])

    assert asyncio.run(run()) == [b"PONG"]


def test_a_server_that_is_not_there_is_a_redis_connection_error(tmp_path):
    connection = resp.Connection(f"unix://{tmp_path / 'no-redis.sock'}", timeout=1, connect_timeout=1)
    with pytest.raises(redis.exceptions.ConnectionError):
        asyncio.run(connection.execute([("PING",)]))


def test_a_url_it_does_not_speak_to_keeps_redis_pys_client(settings):
    settings.REDIS_URL = "rediss://redis.example:6380/0"

    async def pipeline():
        return core_redis.hot_pipeline()

    assert isinstance(asyncio.run(pipeline()), redis.asyncio.client.Pipeline)


def test_a_password_and_a_database_in_the_url_are_sent_when_connecting():
    connection = resp.Connection("redis://:s3cret@localhost:6399/4", timeout=1, connect_timeout=1)
    assert (connection.host, connection.port, connection.password, connection.db) == ("localhost", 6399, "s3cret", "4")
    unix = resp.Connection("unix:///tmp/r.sock?db=3", timeout=1, connect_timeout=1)
    assert (unix.unix_path, unix.db, unix.password) == ("/tmp/r.sock", "3", None)
