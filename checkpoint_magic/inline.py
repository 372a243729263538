"""``InlineCheckpoint``: skip a ``with`` block whose code and watched inputs are unchanged.

The block is identified from the *running frame*: the ``with`` statement at the frame's
current line is found in the frame's source (the script file, or the notebook cell that
IPython registered in ``linecache``) and parsed with :mod:`ast`; its body's normalized
AST is the code fingerprint, together with the code of the user functions the body calls.
On a hit, the produced values are written back (module globals, function locals,
attributes, items) and the body is skipped by a frame trace that raises on the body's
first event; a tracer that was already installed (a debugger, coverage) is restored.

Watch and produce accept names (``x``), attribute paths (``f.a``) and subscripts with
literal keys (``d['a']``, ``x[0]``, ``cfg.params['alpha']``).

Inputs and outputs are inferred from the parsed block, as ``%%checkpoint`` infers them from
a cell: the names the body reads before assigning them (data, not code) are inputs, as are
the data globals its helpers read and the files its path values and string constants name
(by content); the names it binds at top level are produced. ``watch=`` adds inputs,
``ignore=`` leaves names out, ``produce=`` replaces the inferred outputs.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic import InlineCheckpoint
>>> store = tempfile.mkdtemp()
>>> data = [1, 2, 3]
>>> for _ in range(2):
...     with InlineCheckpoint(watch=["data"], produce=["total"], store=store):
...         total = sum(data)
...         print("computed")
computed
>>> total
6
"""

from __future__ import annotations

import ast
import logging
import os
import sys
import time
import types
from collections.abc import Iterable
from typing import Any

from .core import inputs as extra_inputs
from .core import targets
from .core.blocks import (
    CODE_KEY,
    SkipBody,
    block_code_fingerprint,
    block_names,
    find_block,
    frame_scopes,
    target_values,
    write_back_locals,
)
from .core.checkpointer import Checkpointer, LoadResult, fingerprint_or_warn
from .core.names import analyze_cell
from .core.namespace import UNSTORABLE, definition_names, is_code
from .exceptions import (
    MissingProducedNameError,
    MutationNotReplayedWarning,
    UncachedWarning,
    UnknownNameError,
    warn_user,
)
from .fingerprint.code import PATHS_KEY
from .fingerprint.files import (
    code_path_constants,
    nested_path_values,
    path_candidate,
    path_values,
)
from .fingerprint.values import QuietFingerprinter
from .store.core import Store
from .ui import notes
from .ui.capture import StreamRecorder, replay_streams

__all__ = ["InlineCheckpoint"]

logger = logging.getLogger(__name__)


#: The entry's record of what the block printed (not a valid target, so no produced name).
_OUTPUT_KEY = "<output>"
_MUTATED = "mutated:"  # output name prefix of an input's state after the block
_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, frozenset, range, tuple)


class InlineCheckpoint:
    """Cache what a ``with`` block produces; skip the block when its code and inputs are unchanged.

    Parameters
    ----------
    watch : list of str
        The inputs that identify the computation: names, attribute paths (``"f.a"``) or
        subscripts with literal keys (``"d['a']"``). A name that does not exist raises
        :class:`~checkpoint_magic.exceptions.UnknownNameError` before the body runs.
    produce : list of str, optional
        What the block sets and the checkpoint restores (same forms as ``watch``). A name
        the block did not set raises :class:`~checkpoint_magic.exceptions.MissingProducedNameError`
        and nothing is stored. Default: the names the body binds at top level (not its
        functions, classes and imports), those it did not set or that cannot be stored left out.
    ignore : list of str
        Names left out of the inferred inputs (``"x"``, a global ``"CONFIG"``, ``"file:PATH"``).
    store : Store or path, optional
        Default ``$CHECKPOINT_MAGIC_DIR`` or ``./.Lutil-checkpoint``.
    recompute : bool
        Run the block even if an entry exists, and replace the entry.
    name : str, optional
        The namespace the block's entries are listed under; default ``<file>:<produced names>``.

    Notes
    -----
    Works at module level in scripts, in notebook cells, and inside functions and methods
    (produced locals are written back into the function's frame). The data the body reads
    is inferred from its source (names read before they are assigned, and the data globals
    of the helpers it calls); ``watch`` adds what the analysis cannot see (e.g. ``cfg.a``
    read through ``getattr``). A watched or inferred input the body changes in place is
    stored with the outputs and restored on a hit.
    """

    def __init__(
        self,
        *,
        watch: Iterable[str] = (),
        produce: Iterable[str] | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        recompute: bool = False,
        name: str | None = None,
        ignore: Iterable[str] = (),
    ):
        self.watch = [watch] if isinstance(watch, str) else list(watch)
        self._infer_produce = produce is None
        produce = () if produce is None else produce
        self.produce = [produce] if isinstance(produce, str) else list(produce)
        self.ignore = frozenset([ignore] if isinstance(ignore, str) else ignore)
        self._watch_nodes = [targets.parse_target(w, "watch") for w in self.watch]
        self._produce_nodes = [targets.parse_target(p, "produce") for p in self.produce]
        self.store = store
        self.recompute = recompute
        self.name = name
        self.hit: bool | None = None
        self._frame: types.FrameType | None = None

    def __repr__(self) -> str:
        return f"InlineCheckpoint(watch={self.watch!r}, produce={self.produce!r})"

    def _namespace_dict(self, frame: types.FrameType) -> dict[str, Any]:
        return frame.f_locals  # module level: the globals dict itself; in a function: a snapshot

    def __enter__(self) -> InlineCheckpoint:
        frame = sys._getframe(1)
        self._frame = frame
        namespace = self._namespace_dict(frame)
        watched = target_values(
            self.watch,
            self._watch_nodes,
            frame,
            namespace,
            lambda expr: UnknownNameError(
                f"InlineCheckpoint watches {expr!r}, which does not exist here; define it before "
                "the with statement or remove it from watch=[...]"
            ),
        )
        block = find_block(frame)
        reads: list[str] = []
        if block is not None:
            names = analyze_cell(ast.Module(body=block.body, type_ignores=[]))
            reads = names.reads
            if self._infer_produce:
                defined = definition_names(ast.Module(body=block.body, type_ignores=[]))
                self.produce = [n for n in names.binds if n not in defined]
                self._produce_nodes = [targets.parse_target(p, "produce") for p in self.produce]
        filename = frame.f_code.co_filename
        base = os.path.basename(filename) if os.path.exists(filename) else "block"
        self._checkpointer = Checkpointer(
            "block", self.name or f"{base}:{','.join(self.produce) or 'block'}", self.store
        )
        self._start = time.perf_counter()
        self.hit = False
        self._uncached = False
        self._recorder: StreamRecorder | None = None
        if block is None and (self._infer_produce or not self.watch):
            # No source (code typed into exec, a frozen app): nothing can be inferred.
            warn_user(
                f"{self._checkpointer.namespace}: the block's source cannot be read, so its "
                "inputs and outputs cannot be inferred; pass watch=[...] and produce=[...]. "
                "Running it uncached",
                UncachedWarning,
            )
            self._uncached = True
            return self

        def prepare() -> None:
            data: dict[str, Any] = {}
            self._code_fp = block_code_fingerprint(
                block, frame, namespace, self.produce, data, self.ignore
            )
            self._inputs = self._infer_inputs(frame, namespace, reads, watched)
            self._input_fps = self._checkpointer.fingerprint_inputs(self._inputs)
            self._add_globals_and_files(block, data, reads)

        ok, _ = fingerprint_or_warn(self._checkpointer.namespace, prepare)
        if not ok:
            self._uncached = True
            return self
        result: LoadResult | None = None
        if not self.recompute:
            result = self._checkpointer.load(self._code_fp, self._input_fps)
        if (
            result is not None
            and not self._infer_produce
            and not set(self.produce) <= set(result.outputs)
        ):
            result = None  # an entry written under another produce list: recompute
        self.hit = result is not None
        if result is not None:
            self._restore(frame, result)
            self._install_skip(frame, block)
        else:
            self._recorder = StreamRecorder().__enter__()  # shown live, replayed on a hit
        return self

    def _infer_inputs(
        self,
        frame: types.FrameType,
        namespace: dict[str, Any],
        reads: list[str],
        watched: dict[str, Any],
    ) -> dict[str, Any]:
        """The watched values plus the data the body reads (not code, builtins or ignored)."""
        found: dict[str, Any] = {}
        for name in reads:
            if name in self.ignore or name in watched:
                continue
            for scope in (namespace, frame.f_globals):
                if name in scope:
                    value = scope[name]
                    if not is_code(value) and not isinstance(value, extra_inputs.NOT_DATA):
                        found[name] = value
                    break
        found.update(watched)
        return found

    def _add_globals_and_files(
        self, block: ast.With | ast.AsyncWith | None, data: dict[str, Any], reads: list[str]
    ) -> None:
        """Data globals the body's helpers read, and files named by inputs or the body."""
        self._globals: dict[str, Any] = {}
        self._file_sigs: dict[str, Any] = {}
        self._file_labels: dict[str, str] = {}
        # The body's own names were inferred from its source (a name it only assigns is not
        # an input); what remains are the globals its helpers read.
        mentioned = block_names(block)
        data = {k: v for k, v in data.items() if k not in mentioned and k not in self._inputs}
        candidates = path_values(self._inputs.values())
        candidates.update(nested_path_values(self._inputs.values()))  # ["a.csv"], cfg.path
        code = data.pop(CODE_KEY, None)
        if isinstance(code, types.CodeType):
            candidates.update((c, c) for c in code_path_constants(code))
        # Files named by the helpers the body calls and by globals (DATA = "data.csv").
        candidates.update((c, c) for c in data.pop(PATHS_KEY, ()) if c not in candidates)
        candidates.update(path_values(data.values()))
        candidates = {k: v for k, v in candidates.items() if "file:" + k not in self.ignore}
        if not data and not candidates:
            return
        memory = extra_inputs.InputMemory.of(self._checkpointer.store, self._checkpointer.namespace)
        if data:
            self._globals = data
            self._input_fps.update(extra_inputs.global_inputs(data, memory, skip=self.ignore))
        if candidates:
            fps, self._file_sigs = extra_inputs.file_inputs(candidates, memory)
            self._input_fps.update(fps)
            for label, value in candidates.items():
                path = path_candidate(value)
                if path is not None:
                    self._file_labels[path] = "file:" + label

    def _restore(self, frame: types.FrameType, result: LoadResult) -> None:
        namespace = self._namespace_dict(frame)
        scopes = frame_scopes(frame, namespace)
        for name, value in result.outputs.items():
            if name.startswith(_MUTATED):
                target = self._inputs.get(name[len(_MUTATED) :], targets.MISSING)
                if target is targets.MISSING or not extra_inputs.restore_into(target, value):
                    logger.warning("cannot restore the state of %s", name[len(_MUTATED) :])
        if self._infer_produce:
            self.produce = [p for p in self.produce if p in result.outputs]
            self._produce_nodes = [targets.parse_target(p, "produce") for p in self.produce]
        for expr, node in zip(self.produce, self._produce_nodes, strict=True):
            targets.assign(
                node,
                result.outputs[expr],
                namespace,
                scopes,
                lambda parent, expr=expr: UnknownNameError(  # type: ignore[misc]
                    f"cannot restore {expr}: {parent} does not exist"
                ),
            )
        write_back_locals(frame)
        if notes.enabled():  # scripts keep the seed's behaviour: a skipped block prints nothing
            replay_streams(result.outputs.get(_OUTPUT_KEY) or ())
        notes.note_hit(
            self._checkpointer.namespace,
            duration=result.duration,
            created=result.created,
            what=", ".join(self.produce) or self._checkpointer.namespace,
        )

    def _install_skip(self, frame: types.FrameType, block: ast.With | ast.AsyncWith | None) -> None:
        """Raise :class:`SkipBody` in ``frame`` once the body starts, after the ``as`` target."""
        self._saved_trace = sys.gettrace()
        self._saved_frame_trace = frame.f_trace
        self._saved_opcodes = frame.f_trace_opcodes
        saved_global = self._saved_trace
        body_line = block.body[0].lineno if block is not None else None
        as_names = (
            [i.optional_vars.id for i in block.items if isinstance(i.optional_vars, ast.Name)]
            if block
            else []
        )

        if body_line is not None and body_line > frame.f_lineno:
            # The usual case: the first line event at or after the body's first line.
            def skip(frm: types.FrameType, event: str, arg: Any) -> Any:
                if event == "line" and frm.f_lineno >= body_line:
                    raise SkipBody
                return skip

        else:
            # A body on the header's line (`with ...: y = f(x)`) has no line event of its own:
            # trace opcodes and stop at the first one after the `as` target is bound.
            frame.f_trace_opcodes = True
            me = self

            def skip(frm: types.FrameType, event: str, arg: Any) -> Any:
                if len(as_names) == 1 and frm.f_locals.get(as_names[0]) is not me:
                    return skip
                raise SkipBody

        def global_trace(frm: types.FrameType, event: Any, arg: Any) -> Any:
            # Other frames that start meanwhile (our own __exit__) go to the previous tracer.
            return saved_global(frm, event, arg) if saved_global is not None else None

        frame.f_trace = skip
        sys.settrace(global_trace)

    def _uninstall_skip(self, frame: types.FrameType) -> None:
        sys.settrace(self._saved_trace)
        frame.f_trace = self._saved_frame_trace
        frame.f_trace_opcodes = self._saved_opcodes

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        frame = self._frame
        assert frame is not None
        self._frame = None
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.stop()
        if self.hit:
            self._uninstall_skip(frame)
            return exc_type is SkipBody
        if exc_type is not None or self._uncached:
            return False  # the body failed (propagate unchanged), or runs uncached: store nothing
        duration = time.perf_counter() - self._start
        namespace = self._namespace_dict(frame)
        if self._infer_produce:  # only what the body did set, and can be stored
            scopes = frame_scopes(frame, namespace)
            kept = [
                (p, n)
                for p, n in zip(self.produce, self._produce_nodes, strict=True)
                if not isinstance(targets.resolve(n, scopes[:2]), UNSTORABLE)
                and targets.resolve(n, scopes[:2]) is not targets.MISSING
            ]
            self.produce = [p for p, _ in kept]
            self._produce_nodes = [n for _, n in kept]
        outputs = target_values(
            self.produce,
            self._produce_nodes,
            frame,
            namespace,
            lambda expr: MissingProducedNameError(
                f"InlineCheckpoint produces {expr!r}, but the block did not set it; nothing was "
                "stored. Set it in the block or remove it from produce=[...]"
            ),
        )
        if recorder is not None and recorder.events:
            outputs[_OUTPUT_KEY] = recorder.events
        input_fps = dict(self._input_fps)
        after = dict(input_fps)  # the inputs as the run left them
        for name, value in self._inputs.items():  # inputs the body changed in place
            if name in outputs or name not in input_fps or isinstance(value, _IMMUTABLE):
                continue
            now = QuietFingerprinter().fingerprint(value, name=name)
            if now != input_fps[name]:
                after[name] = now
                if extra_inputs.restorable(value):
                    outputs[_MUTATED + name] = value
                else:
                    warn_user(
                        f"{self._checkpointer.namespace}: the block changes {name!r} "
                        f"({type(value).__name__}) in place, whose state cannot be copied back "
                        "on a hit: hits will not repeat the change",
                        MutationNotReplayedWarning,
                    )
        self._forget_changed(input_fps)
        for fps in [input_fps] + ([after] if after != self._input_fps else []):
            # Also filed under the changed inputs: running the block again right away (in a
            # notebook or loop) finds them changed and hits, restoring the same state.
            for label in set(fps) - set(input_fps):
                fps.pop(label)
            self._checkpointer.save(
                self._code_fp, fps, outputs, duration=duration, meta={"produce": self.produce}
            )
        return False

    def _forget_changed(self, input_fps: dict[str, str]) -> None:
        """Globals the run changed are state, files it wrote are outputs: not inputs from now on."""
        if not self._globals and not self._file_sigs:
            return
        memory = extra_inputs.InputMemory.of(self._checkpointer.store, self._checkpointer.namespace)
        state = [
            label
            for label, fp in extra_inputs.global_inputs(self._globals, memory).items()
            if input_fps.get(label, fp) != fp
        ]
        written = extra_inputs.written_files(self._file_sigs)
        for label in state:
            logger.info("the block changes the global %s: it is state, not an input", label[7:])
            input_fps.pop(label, None)
        for path in written:
            input_fps.pop(self._file_labels.get(path, ""), None)
        if state or written:
            memory.learn(state=[s[7:] for s in state], outputs=written)
