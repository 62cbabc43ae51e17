"""LANDeRMT's routed feed-forward networks on top of a transformers causal LM, written by
landermt's `cargo xtask export` beside config.json and model.safetensors.

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

In the layers that `config.landermt["layers"]` lists, the FFN's intermediate units split into a
general branch (G and the other units O) and a specific branch S. Each token's input is shared
between them by its CAR weight (LANDeRMT, ACL 2024, eq. 4-5; landermt's docs/METHOD.md, stage 3):

    taylor:  CAR(x) = sum_G |h_i(x)| Gbar_i / sum_{G u S} |h_i(x)| Gbar_i
    learned: CAR(x) = sigmoid(w . x + b)
    H        = FFN_{G u O}(CAR(x) x) + FFN_S((1 - CAR(x)) x)

With landermt's identity start, the shares are 1 + lambda (CAR - 1) and 1 - lambda CAR. A
bottleneck adapter, where a layer has one, adds up(relu(down(y))) to the FFN's output y.
"""
import torch
import transformers

# The architecture this folder was exported from (substituted by the export).
Base = transformers.BASE_CLASS
BaseConfig = transformers.BASE_CONFIG


class LandermtConfig(BaseConfig):
    # Its own model type, so that a loader without trust_remote_code refuses the folder instead
    # of silently running the unrouted base architecture.
    model_type = "landermt"


def units(mlp, x):
    """The FFN's intermediate units h(x), the input of its down projection."""
    if hasattr(mlp, "dense_h_to_4h"):  # BLOOM
        return mlp.gelu_impl(mlp.dense_h_to_4h(x))
    return mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)


def blocks(model):
    return model.transformer.h if hasattr(model, "transformer") else model.model.layers


class LandermtMlp(torch.nn.Module):
    """The base FFN's own projections, with the layer's routing and adapter beside them: the
    checkpoint's names stay the base architecture's (`mlp.gate_proj.weight`, ...)."""

    def __init__(self, mlp, hidden, spec):
        super().__init__()
        for name, child in mlp.named_children():
            self.add_module(name, child)
        # A name, not a second reference: the checkpoint's names must stay the base's.
        self.down_name = "dense_4h_to_h" if hasattr(mlp, "dense_4h_to_h") else "down_proj"
        self.car = spec.get("car")
        n = getattr(self, self.down_name).in_features
        if self.car is not None:
            self.register_buffer("car_specific", torch.zeros(n))
            self.register_buffer("car_general", torch.zeros(n))
            self.register_buffer("car_scored", torch.zeros(n))
            self.constant = spec["constant"]
        if self.car == "learned":
            self.car_w = torch.nn.Parameter(torch.zeros(hidden))
            self.car_b = torch.nn.Parameter(torch.zeros(1))
        self.identity = spec.get("start") == "identity"
        if self.identity:
            self.car_lambda = torch.nn.Parameter(torch.zeros(1))
        size = spec.get("adapter")
        if size:
            self.adapter_down = torch.nn.Linear(hidden, size, bias=False)
            self.adapter_up = torch.nn.Linear(size, hidden, bias=False)
        self.adapter = bool(size)

    def weight(self, x):
        if self.car == "taylor":
            phi = units(self, x).abs()
            scored = torch.clamp(phi @ self.car_scored, min=torch.finfo(phi.dtype).tiny)
            # A token with no awareness anywhere goes to the general branch whole.
            return torch.clamp((phi @ self.car_general) / scored, 0.0, 1.0).unsqueeze(-1)
        if self.car == "learned":
            return torch.sigmoid(x @ self.car_w + self.car_b).unsqueeze(-1)
        return torch.full_like(x[..., :1], self.constant)

    def forward(self, x, residual=None):
        # BLOOM's FFN adds the residual itself (dropout_add, the identity in evaluation).
        if self.car is None:
            h = units(self, x)
        else:
            car = self.weight(x)
            if self.identity:
                general, specific = 1.0 + self.car_lambda * (car - 1.0), 1.0 - self.car_lambda * car
            else:
                general, specific = car, 1.0 - car
            s = self.car_specific
            h = units(self, x * general) * (1.0 - s) + units(self, x * specific) * s
        y = getattr(self, self.down_name)(h)
        if self.adapter:
            y = y + self.adapter_up(torch.relu(self.adapter_down(y)))
        return y if residual is None else y + residual


class LandermtForCausalLM(Base):
    config_class = LandermtConfig

    def __init__(self, config):
        super().__init__(config)
        for layer, spec in config.landermt["layers"].items():
            block = blocks(self)[int(layer)]
            block.mlp = LandermtMlp(block.mlp, config.hidden_size, spec)
