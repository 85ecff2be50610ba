"""The conditional GANs of the reports, as presets over the DCGAN family's conditioning axis
(bench/methods/adversarial.py explains each kind):

- `cdcgan` — dcgan + concat: the conditional DCGAN of the LEGO study (seed 000; Mirza & Osindero 2014).
- `acgan` — dcgan + ac: Odena et al., "Conditional Image Synthesis with Auxiliary Classifier GANs", ICML 2017
  (seed 001). Adam 2e-4 (0.5, 0.999), latent 100 as the paper.
- `wgan-gp-acgan` — wgan-gp + ac: seed 001's "Model 2", the Wasserstein loss with gradient penalty and an auxiliary
  classifier, which the report found kept improving where DCGAN stalled.
Any of dcgan, lsgan, wgan, wgan-gp takes `conditioning: concat | ac | projection` in a suite as well.
"""

from __future__ import annotations

from bench.methods.adversarial import preset
from bench.methods.base import register_method
from bench.methods.dcgan import DCGAN
from bench.methods.wgan_gp import WGANGP

CDCGAN = register_method(preset(DCGAN, "cdcgan", "Mirza & Osindero 2014 on DCGAN nets: label embedding into G's "
                                "input and D's extra channel (seed 000)", conditioning="concat"))
ACGAN = register_method(preset(DCGAN, "acgan", "Odena et al. 2017: DCGAN nets, D also classifies (real and fake), "
                               "G is trained to be classified as its label", conditioning="ac"))
WGANGPACGAN = register_method(preset(WGANGP, "wgan-gp-acgan", "seed 001's Model 2: WGAN-GP critic with an "
                                     "auxiliary classifier head", conditioning="ac"))
