# Line-table fixture: constructs whose line tables are known to be tricky. Read, compiled and
# run by dump_lines.py under every installed CPython (3.8+ syntax only). here() records the
# caller's (f_lasti, f_lineno) so the test can check live frames as well as the static tables.
import sys

RECORDS = []


def here():
    f = sys._getframe(1)
    RECORDS.append((f.f_code.co_name, f.f_code.co_firstlineno, f.f_lasti, f.f_lineno))
    return 1


def loops(n):
    total = 0
    for i in range(n):
        if i % 3 == 0:
            continue
        while total < i:
            total += here()
            if total > 100:
                break
    else:
        total -= 1
    return total


def multiline(a,
              b):
    value = max(
        a,
        here(),
        b,
    )
    data = {
        "k": here(),
        "j": [a,
              b,
              here()],
    }
    return (value
            + len(data)
            + here())


def excepts(x):
    try:
        if x:
            raise ValueError(x)
        here()
    except ValueError as err:
        here()
        try:
            1 / 0
        except ZeroDivisionError:
            return here() + len(str(err))
        finally:
            here()
    finally:
        here()
    return 0


def gen(n):
    for i in range(n):
        yield (i,
               here())
    yield from range(2)


lam = lambda x: (x,
                 here())


class Klass:
    @staticmethod
    def deco(f):
        return f

    @deco.__func__
    def method(self, q):
        return [here() + i for i in range(q)
                if i != 2]

    def with_block(self):
        import contextlib
        with contextlib.suppress(KeyError):
            {}["x"]
        with contextlib.nullcontext() as c:
            here()
        return c


async def coro(x):
    return x


def drive():
    loops(9)
    multiline(1, 2)
    excepts(True)
    excepts(False)
    list(gen(3))
    lam(1)
    Klass().method(4)
    Klass().with_block()
    c = coro(1)
    try:
        c.send(None)
    except StopIteration:
        pass
