package io.omai.ibvf.inventory;

import io.omai.ibvf.health.VfHealth;
import io.omai.ibvf.model.VirtualFunction;

/** A VF as last discovered, with its health at that moment. */
public record VfStatus(VirtualFunction vf, VfHealth health) {}
