"""Run by test_multiprocess_eval under torchrun: evaluate a fixed model on zoo5 with as many processes as launched."""

import sys

import torch
from accelerate import Accelerator

import bridgezoo as bz
from bridgezoo.data import Zoo5Eval
from bridgezoo.run.evaluate import evaluate

if __name__ == "__main__":
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    bridge = bz.get_bridge("rdbm")
    model = bridge.wrap(bz.get_backbone("unet-test")).eval()
    data = Zoo5Eval("test", tasks=["lowlight", "dehaze"], max_side=40)
    evaluate(bridge, model, data, sys.argv[1], nfe=3, accelerator=accelerator, quiet=True)
    accelerator.wait_for_everyone()
    accelerator.state.destroy_process_group()  # a clean gloo teardown: no worker thread left joinable at exit
