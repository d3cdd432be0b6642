"""Building blocks of LSMS: SVLA (paper sec. 3.3), encoder blocks (sec. 3.2), Full-Scale Decoder (sec. 3.4)."""
