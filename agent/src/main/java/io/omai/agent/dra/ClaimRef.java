package io.omai.agent.dra;

/** A claim as kubelet names it in NodePrepareResources / NodeUnprepareResources (any API version). */
record ClaimRef(String namespace, String uid, String name) {}
