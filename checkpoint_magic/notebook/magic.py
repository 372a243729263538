r"""The IPython extension: ``%load_ext checkpoint_magic`` and the ``%%checkpoint`` cell magic.

On a hit ``%%checkpoint`` does not run its cell: it restores the variables and replays
the output stored by the run that missed. What counts and what is restored: the README.

Design notes: the cell's leading imports run before it is fingerprinted, so a user module they
load counts by its running code (one first imported later would not count: no entry is stored).
Top-level ``def``/``class``/``import`` re-run on a hit (not unpickled): live globals and source.

Examples
--------
>>> import tempfile
>>> from IPython.testing.globalipapp import get_ipython
>>> ip = get_ipython()
>>> from checkpoint_magic import load_ipython_extension
>>> load_ipython_extension(ip)
>>> ip.user_ns["n"] = 3
>>> cell = "total = sum(range(n))\nprint('computed', total)\n"
>>> line = f"--store {tempfile.mkdtemp()} --quiet"
>>> ip.run_cell_magic("checkpoint", line, cell)
computed 3
>>> del ip.user_ns["total"]
>>> ip.run_cell_magic("checkpoint", line, cell)  # a hit: restored, output replayed, not run
computed 3
>>> ip.user_ns["total"]
3
"""

from __future__ import annotations

import ast
import functools
import importlib
import logging
import sys
import time
import types
from collections.abc import Mapping
from typing import Any

import xxhash
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .. import config
from ..core.checkpointer import Checkpointer, LoadResult, fingerprint_or_warn
from ..core.names import analyze_cell, magic_code
from ..core.namespace import (
    IMMUTABLE,
    UNSTORABLE,
    cell_files,
    code_names,
    definition_names,
    globals_read_by,
    is_code,
    is_plain_data,
)
from ..exceptions import MissingProducedNameError, UncachedWarning, warn_user
from ..ui import notes
from .args import MISSING, get_target, parse_args, set_target, usage
from .cellcode import (
    default_namespace,
    ends_with_semicolon,
    incidental_names,
    restored_line,
    top_level_await,
    user_modules_loaded_since,
)
from .outputs import (
    OUTPUTS_KEY,
    RESERVED,
    RESULT_KEY,
    Recorder,
    ReplayedResult,
    closing_new_figures,
    flush_inline_figures,
    replay,
)

__all__ = ["CheckpointMagics", "load_ipython_extension", "unload_ipython_extension"]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the extension
def load_ipython_extension(ip: Any) -> None:
    """Register ``%%checkpoint`` in ``ip`` (``%load_ext checkpoint_magic``).

    Loading twice replaces the earlier registration; a magic of the same name that
    existed before is remembered and put back by :func:`unload_ipython_extension`.

    Parameters
    ----------
    ip : IPython.core.interactiveshell.InteractiveShell
        The shell to extend.
    """
    unload_ipython_extension(ip)
    magics = CheckpointMagics(ip)
    table = ip.magics_manager.magics
    magics._shadowed = {
        (kind, name): table[kind][name]
        for kind, names in magics.magics.items()
        for name in names
        if name in table[kind]
    }
    ip.register_magics(magics)
    from ..store.usage import flush_usage
    from .inspection import register

    register(ip)  # %checkpoint_store and %checkpoint_why
    # A restarted or shut-down kernel runs no atexit handlers: write hit counts after each cell.
    ip.events.register("post_execute", flush_usage)
    logger.debug("checkpoint_magic extension loaded")


def unload_ipython_extension(ip: Any) -> None:
    """Remove everything :func:`load_ipython_extension` added (``%unload_ext checkpoint_magic``).

    The extension registers one magics instance (``%%checkpoint``), the inspection magics
    of :mod:`checkpoint_magic.notebook.inspection` (and the ``Store`` HTML view) and one
    ``post_execute`` callback that writes hit counts; all its magics are removed (a magic it
    had shadowed is restored), and so are its registry entry and the callback.

    Parameters
    ----------
    ip : IPython.core.interactiveshell.InteractiveShell
        The shell the extension was loaded in.
    """
    from ..store.usage import flush_usage
    from .inspection import unregister

    unregister(ip)
    if flush_usage in ip.events.callbacks.get("post_execute", ()):
        ip.events.unregister("post_execute", flush_usage)
    manager = ip.magics_manager
    magics = manager.registry.get(CheckpointMagics.__name__)
    if magics is None:
        return
    shadowed = getattr(magics, "_shadowed", {})
    for kind, names in magics.magics.items():
        for name in names:
            current = manager.magics[kind].get(name)
            if getattr(current, "__self__", None) is not magics:
                continue  # someone registered another magic under this name since: leave it
            previous = shadowed.get((kind, name))
            if previous is None:
                del manager.magics[kind][name]
            else:
                manager.magics[kind][name] = previous
    del manager.registry[CheckpointMagics.__name__]
    logger.debug("checkpoint_magic extension unloaded")


@magics_class
class CheckpointMagics(Magics):
    """The ``%%checkpoint`` cell magic (registered by ``%load_ext checkpoint_magic``)."""

    _shadowed: dict[tuple[str, str], Any]

    @magic_arguments()
    @argument(
        "-w",
        "--watch",
        nargs="+",
        action="extend",
        metavar="NAME",
        help="The inputs that identify the computation: names, attribute paths (cfg.alpha) or "
        "subscripts with literal keys (params['C']). Default: the data the cell reads.",
    )
    @argument(
        "-p",
        "--produce",
        nargs="+",
        action="extend",
        metavar="NAME",
        help="What the cell sets and a hit restores (same forms as --watch). Default: every name "
        "the cell binds at top level, plus inputs it modified in place.",
    )
    @argument(
        "-r",
        "--recompute",
        action="store_true",
        help="Run the cell even if a result is stored, and replace it.",
    )
    @argument(
        "-n",
        "--name",
        metavar="NAME",
        help="Name the cell's entries are listed under (checkpoint-magic ls). Default: 'cell:' "
        "followed by the produced names.",
    )
    @argument(
        "--store",
        metavar="PATH",
        help="Store directory. Default: $CHECKPOINT_MAGIC_DIR or ./.Lutil-checkpoint.",
    )
    @argument(
        "-q",
        "--quiet",
        action="store_true",
        help="Do not show the notes saying that the result was restored or that a value was "
        "left out of the entry.",
    )
    @cell_magic
    def checkpoint(self, line: str, cell: str) -> Any:
        """Skip this cell when its code and inputs are unchanged: restore and replay it instead.

        The first run executes the cell (output shown as usual) and stores what it
        produced together with its output. Later runs with the same code and inputs,
        also in a new kernel, restore the variables and replay the output instead of
        running the cell. Changing the cell's code, an input, a function it calls or a
        package version makes it run again (every version's result stays stored).

        Parameters
        ----------
        line : str
            The options after ``%%checkpoint`` (``--watch``, ``--produce``, ...).
        cell : str
            The cell's code.

        Returns
        -------
        object
            The cell's last expression (``Out[n]``), run or replayed, or ``None``.

        Raises
        ------
        UsageError
            For bad options, an empty cell or top-level ``await``.

        Examples::

            %%checkpoint
            X_pca = PCA(n_components=20, random_state=0).fit_transform(X)

            %%checkpoint --watch X --produce model -n model-fit
            model = LogisticRegression().fit(X, y)
        """
        __tracebackhide__ = True  # IPython shows the user's cell, not these frames
        args = parse_args(self.checkpoint, line)
        return _CellRun(self.shell, args, line, cell).run()


# --------------------------------------------------------------------------- one run of the magic
class _ModuleRef:
    """A module among the produced values, stored by name and imported again on a hit."""

    def __init__(self, name: str):
        self.name = name

    def load(self) -> types.ModuleType:
        return importlib.import_module(self.name)


class _CellRun:
    """One ``%%checkpoint`` execution: fingerprint, then restore, or run and store."""

    def __init__(self, ip: Any, args: Any, line: str, cell: str):
        self.ip = ip
        self.ns: dict[str, Any] = ip.user_ns
        self.args = args
        self.line = line
        self.cell = cell
        self.module_data: set[str] = set()  # inputs that are user-module globals (module.name)

    # ------------------------------------------------------------------ top level
    def run(self) -> Any:
        __tracebackhide__ = True
        ip, args = self.ip, self.args
        source = self.source = ip.transform_cell(self.cell)
        if not source.strip():
            raise UsageError(
                f"%%checkpoint: the cell is empty; write the code to checkpoint below the magic line\n"
                f"{usage(CheckpointMagics.checkpoint)}"
            )
        # One leading line stands for the magic line, so line numbers match the cell's.
        self.filename = ip.compile.cache(
            f"# %%checkpoint {self.line}\n{source}",
            ip.execution_count,
            raw_code=f"%%checkpoint {self.line}\n{self.cell}",
        )
        self.tree = ip.compile.ast_parse(f"\n{source}", filename=self.filename)
        awaited = top_level_await(self.tree)
        if awaited is not None:
            raise UsageError(
                f"%%checkpoint: line {awaited} awaits at the top level of the cell, which a "
                "checkpointed cell cannot do (the magic runs the cell synchronously). Put the "
                "async code in an `async def` function, await it in a cell of its own, and "
                "checkpoint the async function's synchronous parts or its result."
            )
        names = analyze_cell(self.tree)
        if args.produce is None and names.star_import:
            raise UsageError(
                "%%checkpoint: the cell runs `from ... import *`, so the names it defines cannot be "
                "known; list what to restore with --produce NAME ... (or move the import to another cell)"
            )
        self.names = names
        self.show_result = ip.ast_node_interactivity != "none" and not ends_with_semicolon(source)
        for name in args.watch or ():
            if get_target(self.ns, name) is MISSING:
                raise UsageError(
                    f"%%checkpoint: --watch {name!r} does not exist; define it before this cell or "
                    "remove it from --watch"
                )
        if args.produce is not None:
            produce_names = list(args.produce)
        else:  # named after what it makes: not its imports, loop variables or `with` targets
            incidental = incidental_names(self.tree)
            produce_names = [n for n in names.binds if n not in incidental] or list(names.binds)
        self.cp = Checkpointer(
            "cell", args.name or default_namespace(produce_names), store=args.store
        )
        self._run_leading_imports()
        ok, identity = fingerprint_or_warn(f"%%checkpoint {self.cp.namespace}", self._fingerprints)
        if not ok or identity is None:
            value = self._execute()[0]
            return value if self.show_result else None
        code_fp, parts, inputs, input_fps = identity
        if not args.recompute:
            hit = self.cp.load(code_fp, input_fps, code_parts=parts)
            if hit is not None:
                return self._restore(hit)
        return self._run_and_store(code_fp, parts, inputs, input_fps)

    # ------------------------------------------------------------------ fingerprints
    def _fingerprints(self) -> tuple[str, dict[str, str], dict[str, Any], dict[str, str]]:
        code_fp, parts, inputs = self._identify(self.source)
        return code_fp, parts, inputs, self.cp.fingerprint_inputs(inputs)

    def _candidate(self, name: str) -> Any:
        """The value of a name the cell reads, or MISSING (undefined, builtin, IPython's own)."""
        value = self.ns.get(name, MISSING)
        if value is MISSING:
            return MISSING
        hidden = self.ip.user_ns_hidden.get(name, MISSING)
        return MISSING if hidden is value else value

    def _run_leading_imports(self) -> None:
        """Run the cell's first ``import`` statements now, before fingerprinting.

        A user module counts by its running code, so it must be loaded to be fingerprinted;
        the cell runs these statements first anyway (and a hit runs them again). Errors
        propagate as the cell's own: nothing is stored.
        """
        __tracebackhide__ = True
        prefix: list[ast.stmt] = []
        for stmt in self.tree.body:
            if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
                break
            prefix.append(stmt)
        if prefix:
            module = ast.Module(body=prefix, type_ignores=[])
            exec(self.ip.compile(module, self.filename, "exec"), self.ns)

    def _identify(self, source: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        """Code fingerprint (cell + code it uses), its parts, and the input values by name.

        The cell's code object is wrapped in a function whose globals are the code values
        the cell reads, and fingerprinted by :func:`codehash.code_fingerprint`: it follows
        them, the modules the cell imports and the attributes it uses of user modules, then
        the user code those reach, on the code that runs (not on files).
        """
        from ..fingerprint import code as codehash

        code_values: dict[str, Any] = {}
        data: dict[str, Any] = {}
        for name in self.names.reads:
            value = self._candidate(name)
            if value is MISSING:
                continue
            (code_values if is_code(value) else data)[name] = value
        code = _cell_code(source, getattr(self.ip.compile, "flags", 0))
        _, attrs, imports = code_names(code)
        imported = [m for m in map(sys.modules.get, sorted(imports)) if m is not None]
        self.module_data = set()
        if self.args.watch is None:
            roots = [*code_values.values(), *imported, *data.values(), code]  # code: by string
            for name, value in globals_read_by(roots, self.ns, self._candidate, attrs).items():
                if name not in data:
                    data[name] = value
                    if "." in name:  # a user module's global: an input, not restored
                        self.module_data.add(name)
            inputs = data
        else:
            inputs = {name: get_target(self.ns, name) for name in self.args.watch}
        self.files = cell_files(code, inputs, self.cp)  # files it names count by content
        inputs.update(self.files.values)

        wrapper = types.FunctionType(code, dict(code_values))
        cell_fp = codehash.source_fingerprint(source)
        code_fp = codehash.code_fingerprint(wrapper)
        # Each part apart, not their aggregate: a miss names the part that changed (a helper).
        parts = {"<cell>": cell_fp}
        for name, part in codehash.code_parts(wrapper).items():
            if not name.startswith("<exec>.<module>"):  # the wrapper itself
                parts.setdefault(name, part)
        h = xxhash.xxh3_128(b"checkpoint_magic-cell\0")
        h.update(repr(self.args.produce).encode())
        h.update(f"\0{cell_fp}\0{code_fp}".encode())
        return h.hexdigest(), parts, inputs

    # ------------------------------------------------------------------ a hit
    def _restore(self, hit: LoadResult) -> Any:
        outputs = hit.outputs
        record = outputs.get(OUTPUTS_KEY) or {}
        self._run_definitions(record.get("defined", ()))
        with closing_new_figures():
            restored = []
            for name, value in outputs.items():
                if name in RESERVED:
                    continue
                set_target(self.ns, name, value.load() if isinstance(value, _ModuleRef) else value)
                restored.append(name)
        replay(self.ip, record.get("events", ()))
        if not self.args.quiet and config.notes_mode() != "off":
            notes.show(restored_line(self.tree, self.cell, restored, hit.created, hit.duration))
        return self._stored_result(record.get("result"), outputs)

    def _run_definitions(self, defined: Any) -> None:
        """Re-execute the cell's top-level imports, ``def`` and ``class`` statements."""
        __tracebackhide__ = True
        if not defined:
            return
        body: list[ast.stmt] = [s for s in self.tree.body if isinstance(s, _DEFINITIONS)]
        module = ast.Module(body=body, type_ignores=[])
        exec(self.ip.compile(module, self.filename, "exec"), self.ns)

    def _stored_result(self, result: Any, outputs: Mapping[str, Any]) -> Any:
        if not result or not self.show_result:
            return None
        kind = result.get("kind")
        if kind == "value" and RESULT_KEY in outputs:
            return outputs[RESULT_KEY]
        if kind == "name":
            value = get_target(self.ns, result["name"])
            if value is not MISSING:
                return value
        return ReplayedResult(result.get("data") or {}, result.get("metadata") or {})

    # ------------------------------------------------------------------ a miss
    def _execute(self) -> tuple[Any, list[dict[str, Any]], float]:
        """Run the cell, output shown live and recorded; return (value, events, seconds)."""
        __tracebackhide__ = True
        tree = self.ip.transform_ast(self.tree)
        body = list(tree.body)
        last = body.pop() if body and isinstance(body[-1], ast.Expr) else None
        module = ast.Module(body=body, type_ignores=[])
        with Recorder(self.ip) as recorder:
            start = time.perf_counter()
            exec(self.ip.compile(module, self.filename, "exec"), self.ns)
            value = None
            if last is not None:
                value = eval(
                    self.ip.compile(ast.Expression(last.value), self.filename, "eval"), self.ns
                )
            duration = time.perf_counter() - start
            flush_inline_figures(self.ip)
        return value, recorder.events, duration

    def _run_and_store(
        self, code_fp: str, parts: dict[str, str], inputs: dict[str, Any], input_fps: dict[str, str]
    ) -> Any:
        __tracebackhide__ = True
        ns, args = self.ns, self.args
        before = {
            name: value
            for name, value in inputs.items()
            if not isinstance(value, IMMUTABLE) and name not in self.module_data
        }
        loaded = {id(module) for module in list(sys.modules.values())}
        value, events, duration = self._execute()
        self.files.forget_written(input_fps)  # files the cell wrote are outputs, not inputs
        outputs: dict[str, Any] = {}
        defined: list[str] = []
        defined_here = definition_names(self.tree)
        if args.produce is not None:
            missing = [name for name in args.produce if get_target(ns, name) is MISSING]
            if missing:
                raise MissingProducedNameError(
                    f"%%checkpoint: the cell did not set {', '.join(map(repr, missing))} (listed in --produce); "
                    "set it in the cell or remove it from --produce. Nothing was stored."
                )
            for name in args.produce:
                outputs[name] = get_target(ns, name)
        else:
            for name in self.names.binds:
                current = ns.get(name, MISSING)
                if current is MISSING or isinstance(current, UNSTORABLE):
                    continue
                if name in defined_here and is_code(current):
                    defined.append(name)  # re-executed on a hit, not stored
                    continue
                outputs[name] = current
            outputs.update(self._mutated(before, input_fps))
        for name, current in list(outputs.items()):
            if isinstance(current, types.ModuleType):
                outputs[name] = _ModuleRef(current.__name__)
        record: dict[str, Any] = {"events": events, "defined": defined, "result": None}
        if value is not None and self.show_result:
            record["result"] = self._describe_result(value, outputs)
            if record["result"]["kind"] == "value":
                outputs[RESULT_KEY] = value
        outputs[OUTPUTS_KEY] = record
        meta = {"produced": [n for n in outputs if n not in RESERVED], "defined": defined}
        late = user_modules_loaded_since(loaded)
        if late:
            warn_user(
                f"%%checkpoint {self.cp.namespace}: the cell imported the local module(s) "
                f"{', '.join(late)} while it ran, so their code could not be part of the "
                "fingerprint; the result was not stored. Import them in an earlier cell or in "
                "the first lines of this cell.",
                UncachedWarning,
            )
            return value if self.show_result else None
        optional = () if args.produce is not None else set(outputs) - RESERVED
        self.cp.save(
            code_fp,
            input_fps,
            outputs,
            duration=duration,
            meta=meta,
            code_parts=parts,
            optional=optional,
        )
        if self.cp.left_out:
            # Left out of the entry: a hit leaves these names as they are (one note, no warning).
            logger.info("%%checkpoint %s: not stored: %s", self.cp.namespace, self.cp.left_out)
            if not args.quiet and config.notes_mode() != "off":
                notes.show(
                    "not stored (cannot be saved; a hit leaves them unset): "
                    + ", ".join(
                        f"{name} ({reason.split(':')[0]})"
                        for name, reason in self.cp.left_out.items()
                    )
                )
        return value if self.show_result else None  # IPython would not show `x;` either

    def _mutated(self, before: dict[str, Any], input_fps: Mapping[str, str]) -> dict[str, Any]:
        """Inputs the cell modified in place (same object, new fingerprint): outputs too."""
        same = {
            name: value
            for name, value in before.items()
            if get_target(self.ns, name) is value and not is_code(value)
        }
        if not same:
            return {}
        try:
            new = self.cp.fingerprint_inputs(same)
        except Warning:
            raise
        except Exception as exc:  # the first fingerprinting worked; be safe: store them all
            logger.debug("re-fingerprinting inputs failed (%s); storing them as outputs", exc)
            return same
        changed = {
            name: value for name, value in same.items() if input_fps.get(name) != new.get(name)
        }
        if changed:
            logger.debug(
                "%%checkpoint: the cell modified %s in place; they are restored on a hit",
                sorted(changed),
            )
        return changed

    def _describe_result(self, value: Any, outputs: Mapping[str, Any]) -> dict[str, Any]:
        for name, produced in outputs.items():
            if produced is value and name not in RESERVED:
                return {"kind": "name", "name": name}
        try:
            data, metadata = self.ip.display_formatter.format(value)
        except Exception as exc:  # a broken repr: IPython will show its error; store the text only
            logger.debug("formatting the result failed: %s", exc)
            data, metadata = {"text/plain": f"<{type(value).__name__}>"}, {}
        kind = "value" if is_plain_data(value) else "display"
        return {"kind": kind, "data": dict(data), "metadata": dict(metadata)}


_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@functools.lru_cache(maxsize=128)
def _cell_code(source: str, flags: int) -> types.CodeType:
    """A cell compiled, with the code of the magics it calls (``%time y = f(x)``) as constants.

    One code object, so that the names, attributes and imports of all of it are followed
    together (``import m`` in the cell, ``%time m.f(x)`` in a magic). Cached: the same
    code object for the same cell lets the code fingerprints of later runs reuse their work.
    """
    flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = ast.parse(source)
    code = compile(tree, "<checkpoint-cell>", "exec", flags=flags, dont_inherit=True)
    extra: list[types.CodeType] = []
    for block in magic_code(tree):
        try:
            extra.append(
                compile(block, "<checkpoint-magic>", "exec", flags=flags, dont_inherit=True)
            )
        except SyntaxError as exc:  # e.g. ``return`` outside a function: it cannot run either
            logger.debug("code passed to a magic does not compile (%s); skipped", exc)
    return code.replace(co_consts=(*code.co_consts, *extra)) if extra else code
