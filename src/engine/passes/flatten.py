"""Flatten nested and/or into n-ary nodes."""

from __future__ import annotations

from engine import ir


def flatten(expr: ir.Expr) -> ir.Expr:
    """``and(and(a, b), c)`` → ``and(a, b, c)``, and the same for ``or``, everywhere.

    >>> from engine.parser import parse
    >>> a, b, c = (parse(x) for x in "abc")
    >>> flatten(ir.And((ir.And((a, b)), c))) == ir.And((a, b, c))
    True
    """
    return ir.transform(expr, _flatten_node)


def _flatten_node(n: ir.Node) -> ir.Node:
    if isinstance(n, (ir.And, ir.Or)) and any(isinstance(a, type(n)) for a in n.args):
        args: list[ir.Expr] = []
        for a in n.args:
            args.extend(a.args if isinstance(a, type(n)) else (a,))
        return n.with_(args=tuple(args))
    return n
