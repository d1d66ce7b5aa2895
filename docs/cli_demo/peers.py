"""srcore files in BasicSR 1.4.2 and spandrel 0.4.2, with their own loaders (torchvision's CUDA-only C ops skipped)."""
import sys, types, importlib, subprocess
sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
sys.modules["torchvision.transforms.functional_tensor"] = importlib.import_module("torchvision.transforms._functional_tensor")
import warnings; warnings.filterwarnings("ignore")
import torch, spandrel
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.edsr_arch import EDSR
from basicsr.models.base_model import BaseModel
from srcore.checkpoint import save_checkpoint
from srcore.models import build_generator, DIV2K_RGB_MEAN
from srcore.weights import load_generator
import logging; logging.disable(logging.INFO)
d = sys.argv[1]
S = sys.argv[2]  # the srcore command to export with
def rnd(arch, seed, **kw):
    torch.manual_seed(seed); m = build_generator(arch, **kw).eval()
    with torch.no_grad():
        for p in m.parameters(): p.copy_(0.05 * torch.randn_like(p))
    return m
def load_network(net, path, key):
    BaseModel.load_network(BaseModel.__new__(BaseModel), net, path, strict=True, param_key=key); return net.eval()
rrdb = dict(scale=4, num_feat=16, num_block=2, num_grow_ch=32)
raw, ema = rnd("rrdb", 0, **rrdb), rnd("rrdb", 1, **rrdb)
save_checkpoint(f"{d}/rrdb_train.pt", {"arch": "rrdb", "arch_args": raw.arch_args, "model": raw.state_dict(), "ema": ema.state_dict(), "step": 5})
edsr = rnd("edsr", 2, scale=4, num_feat=16, num_block=3)
save_checkpoint(f"{d}/edsr.pt", {"arch": "edsr", "arch_args": edsr.arch_args, "model": edsr.state_dict()})
x = torch.rand(1, 3, 24, 20)
with torch.no_grad():
    print(f"srcore's own reading of rrdb_train.pt: EMA; raw and EMA outputs differ by up to {(raw(x) - ema(x)).abs().max() * 255:.1f}/255")
    try:
        load_network(RRDBNet(3, 3, num_feat=16, num_block=2, num_grow_ch=32), f"{d}/rrdb_train.pt", "params")
    except KeyError as e:
        print(f"BasicSR load_network(rrdb_train.pt): KeyError {e}")
    desc = spandrel.ModelLoader().load_from_file(f"{d}/rrdb_train.pt")
    print(f"spandrel on rrdb_train.pt: {desc.architecture.name}; max |spandrel - srcore EMA| = {(desc.model.eval()(x) - ema(x)).abs().max() * 255:.2f}/255, "
          f"max |spandrel - raw| = {(desc.model(x) - raw(x)).abs().max() * 255:.2e}/255")
    for layout, name in (("basicsr", "net_g.pth"), ("esrgan", "RRDB_x4.pth")):
        done = subprocess.run([S, "export", f"{d}/rrdb_train.pt", "-o", f"{d}/{name}", "--layout", layout], capture_output=True, text=True)
        if done.returncode:
            print(f"export --layout {layout}: exit {done.returncode}: {done.stderr.strip()[:200]}"); continue
        desc = spandrel.ModelLoader().load_from_file(f"{d}/{name}")
        print(f"export --layout {layout}: spandrel max |diff| vs srcore EMA = {(desc.model.eval()(x) - ema(x)).abs().max():.3g}")
        if layout == "basicsr":
            for key, ref in (("params_ema", ema), ("params", raw)):
                net = load_network(RRDBNet(3, 3, num_feat=16, num_block=2, num_grow_ch=32), f"{d}/{name}", key)
                print(f"  BasicSR load_network(param_key={key}) RRDBNet: max |diff| vs srcore {'EMA' if key == 'params_ema' else 'raw'} = {(net(x) - ref(x)).abs().max():.3g}")
    done = subprocess.run([S, "export", f"{d}/edsr.pt", "-o", f"{d}/EDSR.pth", "--layout", "basicsr"], capture_output=True, text=True)
    if done.returncode:
        print(f"export edsr --layout basicsr: exit {done.returncode}: {done.stderr.strip()[:200]}")
    else:
        net = load_network(EDSR(3, 3, num_feat=16, num_block=3, upscale=4, img_range=255., rgb_mean=DIV2K_RGB_MEAN), f"{d}/EDSR.pth", "params")
        print(f"export edsr --layout basicsr: BasicSR EDSR max |diff| = {(net(x) - edsr(x)).abs().max():.3g} ({(net(x) - edsr(x)).abs().max() * 255:.2e}/255)")
