"""PyTorch savers: modules and tensors through ``torch.save``, without importing torch until used.

Both answer ``can_save`` from ``sys.modules`` (a value can only be a tensor if torch is
already imported), so registering them for the store costs nothing without PyTorch.

Examples
--------
>>> TorchTensorSaver().can_save([1.0])
False
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from .base import HookedPickler, Saver, class_path, read_json, write_json

__all__ = ["TorchModuleSaver", "TorchTensorSaver"]

logger = logging.getLogger(__name__)


def _torch() -> Any:
    return sys.modules.get("torch")


def _torch_load(torch: Any, path: str) -> Any:
    """``torch.load`` of plain tensors, onto the CPU when no GPU is available."""
    location = None if torch.cuda.is_available() else "cpu"
    try:
        return torch.load(path, map_location=location, weights_only=True)
    except TypeError:  # pragma: no cover - torch < 1.13 has no weights_only
        return torch.load(path, map_location=location)


class TorchTensorSaver(Saver):
    """A PyTorch tensor (or parameter) through ``torch.save``; on the CPU if there is no GPU."""

    def can_save(self, obj: Any) -> bool:
        """Whether ``obj`` is a ``torch.Tensor`` (torch not imported: no).

        Parameters
        ----------
        obj : object
            Any value.

        Returns
        -------
        bool
            ``True`` for tensors and parameters.
        """
        torch = _torch()
        return torch is not None and isinstance(obj, torch.Tensor)

    def save(self, obj: Any, path: str) -> None:
        """Write ``path/tensor.pt`` with ``torch.save`` and its device in ``tensor.json``.

        Parameters
        ----------
        obj : torch.Tensor
            The tensor.
        path : str
            The directory to write into.
        """
        import torch

        torch.save(obj, os.path.join(path, "tensor.pt"))
        write_json(path, "tensor.json", {"device": str(obj.device), "torch": torch.__version__})

    def load(self, path: str) -> Any:
        """Load ``path/tensor.pt`` (``weights_only``), onto the CPU when no GPU is available.

        Parameters
        ----------
        path : str
            The directory :meth:`save` wrote.

        Returns
        -------
        torch.Tensor
            The tensor.
        """
        import torch

        return _torch_load(torch, os.path.join(path, "tensor.pt"))


class TorchModuleSaver(Saver):
    """A PyTorch module: ``torch.save`` of its state dict plus a skeleton pickled without tensors.

    Files: ``state_dict.pt`` (the standard ``module.state_dict()``, loadable on its own),
    ``extra_tensors.pt`` (tensors that are not in the state dict, such as non-persistent
    buffers) and ``skeleton.pkl`` (the module pickled by cloudpickle with every tensor
    replaced by a reference, so a class defined in ``__main__`` loads without its source).
    Parameters stay parameters, tied weights stay tied, and a GPU module loads on the CPU
    when no GPU is available.
    """

    def can_save(self, obj: Any) -> bool:
        """Whether ``obj`` is a ``torch.nn.Module`` (torch not imported: no).

        Parameters
        ----------
        obj : object
            Any value.

        Returns
        -------
        bool
            ``True`` for modules.
        """
        torch = _torch()
        return torch is not None and isinstance(obj, torch.nn.Module)

    def save(self, obj: Any, path: str) -> None:
        """Write the state dict, the other tensors and the tensorless skeleton of ``obj``.

        Parameters
        ----------
        obj : torch.nn.Module
            The module.
        path : str
            The directory to write into.
        """
        import torch

        state = obj.state_dict(keep_vars=True)
        refs: dict[int, tuple[str, Any]] = {}
        for key, tensor in state.items():
            refs.setdefault(id(tensor), ("state", key))
        extras: list[Any] = []

        def persistent_id(o: Any) -> Any:
            if not isinstance(o, torch.Tensor):
                return None
            ref = refs.get(id(o))
            if ref is None:
                ref = refs[id(o)] = ("extra", len(extras))
                extras.append(o)
            return (*ref, isinstance(o, torch.nn.Parameter), bool(o.requires_grad))

        skeleton = HookedPickler.dumps(obj, persistent_id)
        torch.save({k: v.detach() for k, v in state.items()}, os.path.join(path, "state_dict.pt"))
        torch.save([t.detach() for t in extras], os.path.join(path, "extra_tensors.pt"))
        Path(path, "skeleton.pkl").write_bytes(skeleton)
        devices = sorted({str(t.device) for t in (*state.values(), *extras)})
        write_json(
            path,
            "module.json",
            {"class": class_path(obj), "devices": devices, "torch": torch.__version__},
        )

    def load(self, path: str) -> Any:
        """Rebuild the module from its skeleton and tensors; log a WARNING if moved off a GPU.

        Parameters
        ----------
        path : str
            The directory :meth:`save` wrote.

        Returns
        -------
        torch.nn.Module
            The module, with parameters and tied weights as saved.
        """
        import torch

        state = _torch_load(torch, os.path.join(path, "state_dict.pt"))
        extras = _torch_load(torch, os.path.join(path, "extra_tensors.pt"))
        rebuilt: dict[tuple[str, Any], Any] = {}

        def persistent_load(pid: Any) -> Any:
            kind, key, is_param, requires_grad = pid
            found = rebuilt.get((kind, key))
            if found is None:
                tensor = state[key] if kind == "state" else extras[key]
                if is_param:
                    tensor = torch.nn.Parameter(tensor, requires_grad=requires_grad)
                elif requires_grad:
                    tensor.requires_grad_(True)
                found = rebuilt[(kind, key)] = tensor
            return found

        module = HookedPickler.loads(Path(path, "skeleton.pkl").read_bytes(), persistent_load)
        info = read_json(path, "module.json")
        if (
            any(d.startswith("cuda") for d in info.get("devices", ()))
            and not torch.cuda.is_available()
        ):
            logger.warning(
                "%s was saved on %s and is loaded on the CPU (no GPU here)",
                info.get("class"),
                info.get("devices"),
            )
        return module
