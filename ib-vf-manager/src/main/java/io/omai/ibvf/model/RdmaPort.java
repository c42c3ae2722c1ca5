package io.omai.ibvf.model;

/** One port of an RDMA device, read from {@code infiniband/<dev>/ports/<number>/}. */
public record RdmaPort(int number, LinkLayer linkLayer, PortState state) {}
