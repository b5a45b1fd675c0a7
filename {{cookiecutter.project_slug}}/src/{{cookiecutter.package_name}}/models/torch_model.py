"""PyTorch: the shared one-hot preprocessing + a small tabular MLP (GPU with device=cuda).

The network normalises its inputs itself (signed log1p, then the training mean/std kept as
buffers), so the ONNX export is the skl2onnx preprocessing graph followed by a few plain ONNX
nodes written here: no exporter, no extra dependency.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer

from .base import (
    FitResult,
    IterationCallback,
    TabularModel,
    features,
    make_preprocessor,
    onnx_initial_types,
)

FRAMEWORK = "pytorch"
log = logging.getLogger(__name__)


class Net(torch.nn.Module):
    mean: torch.Tensor  # buffers: the training data's statistics after `squash`
    std: torch.Tensor

    def __init__(self, n_inputs: int, hidden: list[int], dropout: float) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        width = n_inputs
        for size in hidden:
            layers += [torch.nn.Linear(width, size), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
            width = size
        layers.append(torch.nn.Linear(width, 2))
        self.layers = torch.nn.Sequential(*layers)
        self.register_buffer("mean", torch.zeros(n_inputs))
        self.register_buffer("std", torch.ones(n_inputs))

    @staticmethod
    def squash(x: torch.Tensor) -> torch.Tensor:
        return torch.sign(x) * torch.log(torch.abs(x) + 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers((self.squash(x) - self.mean) / self.std)
        return out


class Model(TabularModel):
    framework = FRAMEWORK

    def __init__(self, params: dict[str, Any], device: str = "cpu") -> None:
        super().__init__(params, device)
        self.prep: ColumnTransformer | None = None
        self.net: Net | None = None

    def fit(
        self,
        x: pd.DataFrame,
        y: np.ndarray,
        x_val: pd.DataFrame,
        y_val: np.ndarray,
        on_iteration: IterationCallback | None = None,
    ) -> FitResult:
        p = self.params
        epochs = int(p.get("epochs", 20))
        batch_size = int(p.get("batch_size", 256))
        torch.manual_seed(self.seed)
        if self.threads:
            torch.set_num_threads(self.threads)
        if self.device == "cpu":
            torch.use_deterministic_algorithms(True)
        device = torch.device(self.device)
        self.prep = make_preprocessor()
        xt = torch.as_tensor(self.prep.fit_transform(features(x)), dtype=torch.float32)
        xv = torch.as_tensor(self.prep.transform(features(x_val)), dtype=torch.float32)
        yt = torch.as_tensor(np.array(y), dtype=torch.long)
        yv = torch.as_tensor(np.array(y_val), dtype=torch.long)
        net = Net(
            xt.shape[1], [int(h) for h in p.get("hidden", [64, 32])], float(p.get("dropout", 0.1))
        )
        squashed = Net.squash(xt)
        net.mean.copy_(squashed.mean(dim=0))
        net.std.copy_(squashed.std(dim=0).clamp_min(1e-6))
        net.to(device)
        xt, yt, xv, yv = xt.to(device), yt.to(device), xv.to(device), yv.to(device)
        optimizer = torch.optim.AdamW(
            net.parameters(),
            lr=float(p.get("learning_rate", 5e-3)),
            weight_decay=float(p.get("weight_decay", 1e-4)),
        )
        loss_fn = torch.nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(self.seed)
        history: list[tuple[int, dict[str, float]]] = []
        for epoch in range(1, epochs + 1):
            net.train()
            order = torch.randperm(len(xt), generator=generator).to(device)
            total = 0.0
            for start in range(0, len(xt), batch_size):
                batch = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = loss_fn(net(xt[batch]), yt[batch])
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            net.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(net(xv), yv))
            metrics = {"train_loss": total / len(xt), "val_loss": val_loss}
            history.append((epoch, metrics))
            log.info("epoch %d/%d train_loss=%.4f val_loss=%.4f", epoch, epochs, *metrics.values())
            if on_iteration is not None:
                on_iteration(epoch, metrics)
        self.net = net.to("cpu").eval()
        return FitResult(history=history, device=self.device, iterations=epochs)

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        assert self.prep is not None and self.net is not None, "fit first"
        xt = torch.as_tensor(self.prep.transform(features(x)), dtype=torch.float32)
        with torch.no_grad():
            proba = torch.softmax(self.net(xt), dim=1)[:, 1]
        out: np.ndarray = proba.numpy()
        return out

    def to_onnx(self) -> Any:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
        from skl2onnx import convert_sklearn

        assert self.prep is not None and self.net is not None, "fit first"
        model = convert_sklearn(
            self.prep, initial_types=onnx_initial_types(), target_opset={"": 18, "ai.onnx.ml": 3}
        )
        graph = model.graph
        x = graph.output[0].name
        del graph.output[:]

        def const(name: str, value: np.ndarray) -> str:
            graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
            return name

        nodes = [
            helper.make_node("Abs", [x], ["mlp_abs"]),
            helper.make_node("Sign", [x], ["mlp_sign"]),
            helper.make_node("Add", ["mlp_abs", const("mlp_one", np.array(1.0))], ["mlp_abs1"]),
            helper.make_node("Log", ["mlp_abs1"], ["mlp_log"]),
            helper.make_node("Mul", ["mlp_sign", "mlp_log"], ["mlp_squashed"]),
            helper.make_node(
                "Sub", ["mlp_squashed", const("mlp_mean", self.net.mean.numpy())], ["mlp_centred"]
            ),
            helper.make_node(
                "Div", ["mlp_centred", const("mlp_std", self.net.std.numpy())], ["mlp_h0"]
            ),
        ]
        linears = [m for m in self.net.layers if isinstance(m, torch.nn.Linear)]
        h = "mlp_h0"
        for i, layer in enumerate(linears, start=1):
            w = const(f"mlp_w{i}", layer.weight.detach().numpy())
            b = const(f"mlp_b{i}", layer.bias.detach().numpy())
            nodes.append(helper.make_node("Gemm", [h, w, b], [f"mlp_g{i}"], transB=1))
            h = f"mlp_g{i}"
            if i < len(linears):
                nodes.append(helper.make_node("Relu", [h], [f"mlp_r{i}"]))
                h = f"mlp_r{i}"
        nodes += [
            helper.make_node("Softmax", [h], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ]
        graph.node.extend(nodes)
        graph.output.extend(
            [
                helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
            ]
        )
        onnx.checker.check_model(model)
        return model


def suggest_params(trial: Any) -> dict[str, Any]:
    width = trial.suggest_categorical("width", [32, 64, 128])
    return {
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "hidden": [width, width // 2],
    }
