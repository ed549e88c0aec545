// Translation unit that carries the precompiled Torch header (see trainguard_helpers.cmake).
