"""Flow matching for restoration (Lipman et al. 2023; torchcfm `conditional_flow_matching.py` @ cacd4dc8).

The straight path x_t = (1 − t)·x0 + t·μ (torchcfm's τ = 1 − t, with x0_src = μ and x1 = x0), π = zero by
default, objective `velocity` (d x_t/dt = μ − x0) with MSE, and torchcfm's Euler sampler (100 steps).

The noise term is c_t = σ·sqrt(t(1 − t)) (SB-CFM's Brownian-bridge noise, pinned at both ends); it only matters
when π ≠ zero, which is what the π ablation switches on. Relation: with π = zero, exactly the generalized bridge
after the time change τ = 1 − Θ_t, for any θ schedule (docs/bridges.md, "How the methods relate to the generalized
bridge").
"""


from bridgezoo import Bridge, Option, Sampler, hookimpl
from bridgezoo.devices import cast_like


class FlowMatching(Bridge):
    paper = "Flow Matching for Generative Modeling, Lipman et al., ICLR 2023 (torchcfm: Tong et al., TMLR 2024)"
    summary = "Conditional flow matching on the straight path from μ to x0"
    default_nfe = 100
    official_samplers = ("euler", "ddim")
    option_spec = {
        "sigma": Option(0.1, "noise scale: c_t = σ·sqrt(t(1 − t)) in [-1, 1] units; no effect with π = zero"),
    }
    option_defaults = {"pi": "zero", "objective": "velocity", "loss_type": "l2"}

    def schedule(self, t):
        return 1 - t, t, self.options["sigma"] * (t * (1 - t)).clamp_min(0).sqrt()

    @property
    def relation(self) -> dict:
        return {"kind": "exact", "theta": "any (time change τ = 1 − Θ_t)", "lam": 0.0, "pi": "zero",
                "note": "exact for π = zero; with π ≠ zero the noise σ·sqrt(t(1−t)) is a θ → 0 limit"}


class Euler(Sampler):
    """torchcfm's Euler on the mean path: x_s = x_t + (s − t)·v̂, v̂ = da/dt·x̂0 + db/dt·μ (x̂0 clipped if `clip_x0`)."""

    summary = "Euler on the mean path (torchcfm's sampler)"
    paper = FlowMatching.paper

    def step(self, bridge, model, x, mu, t, s, generator=None):
        x0 = bridge.x0_hat(model, x, mu, t)
        da, db, _ = (cast_like(v, x) for v in bridge.coefficient_derivatives(t))
        return x + (s - t).reshape(-1, 1, 1, 1) * (da * x0 + db * mu), x0


@hookimpl
def register_bridges(register):
    register(FlowMatching, name="fm", aliases=("flow-matching",), summary=FlowMatching.summary)


@hookimpl
def register_samplers(register):
    register(Euler, name="euler", bridges=FlowMatching)
