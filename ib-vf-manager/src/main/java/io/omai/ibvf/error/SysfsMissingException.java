package io.omai.ibvf.error;

/** A sysfs attribute or directory this module needs is absent. */
public final class SysfsMissingException extends IbVfException {

    private final String path;

    public SysfsMissingException(String path, String why) {
        super("sysfs path " + path + " does not exist; " + why, null);
        this.path = path;
    }

    public String path() {
        return path;
    }
}
