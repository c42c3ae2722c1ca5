package io.omai.agent.quota;

/**
 * What the dead-process reaper found wrong with a usage file on one pass. The file is written by the container,
 * so a contradiction in it is tampering (or a shim bug), never a fact to act on.
 *
 * @param kind what is wrong
 * @param device the device record concerned, -1 for the whole file
 * @param detail what was seen and what was expected, in words
 */
public record UsageProblem(Kind kind, int device, String detail) {
    /** The kinds of problem, each reported once while it lasts. */
    public enum Kind {
        /** The file contradicts the ABI (size, magic, header fields) or itself (a total below its slots' bytes). */
        TAMPERED,
        /** Every slot is taken: the shim refuses new processes of the container. */
        SLOTS_EXHAUSTED
    }

    /** Identifies the problem across passes, so it is reported once while it lasts. */
    String key() {
        return kind + "#" + device;
    }
}
