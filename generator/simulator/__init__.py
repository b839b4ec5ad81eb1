"""An OpenAI-compatible API simulator: fake pages, real rate limits, injected faults.

In-process (tests, demos)::

    async with Simulator(SimulatorConfig(rpm=60, error_rate=0.05)) as sim:
        client = AsyncOpenAI(api_key="sk-sim", base_url=sim.base_url, max_retries=0)

As a process: `python -m generator.simulator --port 8089 --rpm 60` (see docs/simulator.md).
"""

from generator.simulator.cli import DEFAULT_PORT, add_simulator_arguments, main, run_simulator
from generator.simulator.config import DEFAULT_MODELS, SimulatorConfig, replace_config
from generator.simulator.faults import Kind
from generator.simulator.server import Simulator
from generator.simulator.stats import SimulatorStats

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_PORT",
    "Kind",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "add_simulator_arguments",
    "main",
    "replace_config",
    "run_simulator",
]
