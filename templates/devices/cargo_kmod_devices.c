// SPDX-License-Identifier: GPL-2.0
/*
 * cargo-kmod's test-device helper. Built by cargo-kmod against each kernel tree and loaded
 * by `cargo kmod test`/`run` before the module under test.
 *
 * On load it applies the device-tree overlays named by the `overlays` parameter (compiled
 * `.dtbo` files in the guest's initramfs, comma-separated) onto the live tree: the
 * firmware's tree on arm64 `-M virt`, the kernel's empty root node on x86_64. The kernel's
 * OF reconfig notifier creates a platform device for every new node under the root. The
 * `nodes` parameter names the nodes the overlays add under the root: when one already
 * exists, the overlay would change the guest's own node instead of adding a device, so the
 * load fails with -EEXIST before anything is applied.
 *
 * It also drives a software I2C bus: a platform driver for `cargo-kmod,i2c-bus` nodes that
 * registers an I2C adapter with the node as its `of_node`, so the I2C core instantiates
 * every child node as a client at its `reg` address, with its properties. The adapter
 * answers for those addresses only, each backed by a 256-byte register file (preset from
 * the bus node's `cargo-kmod,registers-AA` byte strings): a write sets the register
 * pointer from its first byte and stores the rest, a read returns bytes from the pointer,
 * both auto-incrementing; SMBus transfers are emulated by the I2C core on top of that.
 *
 * On unload the overlays are removed in reverse order, which removes their devices, and a
 * node still present afterwards is reported.
 */
#include <linux/err.h>
#include <linux/i2c.h>
#include <linux/kernel_read_file.h>
#include <linux/limits.h>
#include <linux/module.h>
#include <linux/of.h>
#include <linux/of_platform.h>
#include <linux/platform_device.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#define KMOD_MAX_OVERLAYS 16
#define KMOD_MAX_CLIENTS 32

static char *overlays;
module_param(overlays, charp, 0444);
MODULE_PARM_DESC(overlays, "Comma-separated paths of compiled overlays (.dtbo) to apply");

static char *nodes;
module_param(nodes, charp, 0444);
MODULE_PARM_DESC(nodes, "Comma-separated paths of the nodes the overlays add under the root");

static int ovcs_ids[KMOD_MAX_OVERLAYS];
static int applied;

struct kmod_i2c_client {
	u16 addr;
	u8 pointer;
	u8 regs[256];
};

struct kmod_i2c_bus {
	struct i2c_adapter adap;
	struct mutex lock;
	int count;
	struct kmod_i2c_client clients[KMOD_MAX_CLIENTS];
};

static struct kmod_i2c_client *kmod_i2c_find(struct kmod_i2c_bus *bus, u16 addr)
{
	int i;

	for (i = 0; i < bus->count; i++)
		if (bus->clients[i].addr == addr)
			return &bus->clients[i];
	return NULL;
}

static int kmod_i2c_xfer(struct i2c_adapter *adap, struct i2c_msg *msgs, int num)
{
	struct kmod_i2c_bus *bus = i2c_get_adapdata(adap);
	struct kmod_i2c_client *c;
	int i, j;

	mutex_lock(&bus->lock);
	for (i = 0; i < num; i++) {
		struct i2c_msg *m = &msgs[i];

		c = kmod_i2c_find(bus, m->addr);
		if (!c) {
			mutex_unlock(&bus->lock);
			return -ENXIO;	/* nobody acknowledged the address */
		}
		if (m->flags & I2C_M_RD) {
			for (j = 0; j < m->len; j++)
				m->buf[j] = c->regs[c->pointer++];
		} else if (m->len > 0) {
			c->pointer = m->buf[0];
			for (j = 1; j < m->len; j++)
				c->regs[c->pointer++] = m->buf[j];
		}
	}
	mutex_unlock(&bus->lock);
	return num;
}

static u32 kmod_i2c_func(struct i2c_adapter *adap)
{
	return I2C_FUNC_I2C | I2C_FUNC_SMBUS_EMUL;
}

static const struct i2c_algorithm kmod_i2c_algo = {
	.xfer = kmod_i2c_xfer,
	.functionality = kmod_i2c_func,
};

static int kmod_i2c_probe(struct platform_device *pdev)
{
	struct device_node *np = pdev->dev.of_node;
	struct device_node *child;
	struct kmod_i2c_bus *bus;
	char prop[40];
	u32 addr;
	int len;

	bus = devm_kzalloc(&pdev->dev, sizeof(*bus), GFP_KERNEL);
	if (!bus)
		return -ENOMEM;
	mutex_init(&bus->lock);
	for_each_available_child_of_node(np, child) {
		if (of_property_read_u32(child, "reg", &addr))
			continue;
		if (bus->count == KMOD_MAX_CLIENTS) {
			dev_err(&pdev->dev, "more than %d I2C test devices\n", KMOD_MAX_CLIENTS);
			of_node_put(child);
			return -E2BIG;
		}
		bus->clients[bus->count].addr = addr & 0x3ff;
		snprintf(prop, sizeof(prop), "cargo-kmod,registers-%02x", addr & 0x3ff);
		len = of_property_count_u8_elems(np, prop);
		if (len > 0)
			of_property_read_u8_array(np, prop, bus->clients[bus->count].regs,
						  min(len, 256));
		bus->count++;
	}

	bus->adap.owner = THIS_MODULE;
	bus->adap.class = 0;
	bus->adap.algo = &kmod_i2c_algo;
	bus->adap.dev.parent = &pdev->dev;
	bus->adap.dev.of_node = np;
	strscpy(bus->adap.name, "cargo-kmod test I2C bus", sizeof(bus->adap.name));
	i2c_set_adapdata(&bus->adap, bus);
	platform_set_drvdata(pdev, bus);
	/* Registers the adapter, then a client for each child node (of_i2c_register_devices). */
	return devm_i2c_add_adapter(&pdev->dev, &bus->adap);
}

static const struct of_device_id kmod_i2c_of_match[] = {
	{ .compatible = "cargo-kmod,i2c-bus" },
	{ }
};
MODULE_DEVICE_TABLE(of, kmod_i2c_of_match);

static struct platform_driver kmod_i2c_driver = {
	.probe = kmod_i2c_probe,
	.driver = {
		.name = "cargo-kmod-i2c",
		.of_match_table = kmod_i2c_of_match,
	},
};

/* How many of the `nodes` exist in the live tree; each one is reported with `what`. */
static int kmod_existing_nodes(const char *what)
{
	char *list, *cursor, *path;
	struct device_node *np;
	int found = 0;

	if (!nodes || !*nodes)
		return 0;
	list = kstrdup(nodes, GFP_KERNEL);
	if (!list)
		return -ENOMEM;
	cursor = list;
	while ((path = strsep(&cursor, ",")) != NULL) {
		if (!*path)
			continue;
		np = of_find_node_by_path(path);
		if (np) {
			of_node_put(np);
			pr_err("cargo-kmod: node %s %s\n", path, what);
			found++;
		}
	}
	kfree(list);
	return found;
}

static void kmod_remove_overlays(void)
{
	int ret;

	while (applied > 0) {
		applied--;
		ret = of_overlay_remove(&ovcs_ids[applied]);
		if (ret)
			pr_err("cargo-kmod: cannot remove overlay %d: error %d\n", applied, ret);
	}
}

static int kmod_apply(const char *path)
{
	void *buf = NULL;
	size_t size = 0;
	ssize_t n;
	int ret;

	if (applied == KMOD_MAX_OVERLAYS) {
		pr_err("cargo-kmod: more than %d overlays\n", KMOD_MAX_OVERLAYS);
		return -E2BIG;
	}
	n = kernel_read_file_from_path(path, 0, &buf, INT_MAX, &size, READING_UNKNOWN);
	if (n < 0) {
		pr_err("cargo-kmod: cannot read overlay %s: error %zd\n", path, n);
		return n;
	}
	ret = of_overlay_fdt_apply(buf, n, &ovcs_ids[applied], NULL);
	vfree(buf);
	if (ovcs_ids[applied])
		applied++;	/* a partly applied changeset must still be removed */
	if (ret) {
		pr_err("cargo-kmod: cannot apply overlay %s: error %d\n", path, ret);
		return ret;
	}
	pr_info("cargo-kmod: applied overlay %s\n", path);
	return 0;
}

static int __init kmod_devices_init(void)
{
	char *list, *cursor, *path;
	int ret;

	ret = kmod_existing_nodes("already exists in the live device tree");
	if (ret)
		return ret < 0 ? ret : -EEXIST;
	ret = platform_driver_register(&kmod_i2c_driver);
	if (ret)
		return ret;
	if (!overlays || !*overlays)
		return 0;
	list = kstrdup(overlays, GFP_KERNEL);
	if (!list) {
		platform_driver_unregister(&kmod_i2c_driver);
		return -ENOMEM;
	}
	cursor = list;
	while ((path = strsep(&cursor, ",")) != NULL) {
		if (!*path)
			continue;
		ret = kmod_apply(path);
		if (ret)
			break;
	}
	kfree(list);
	if (ret) {
		kmod_remove_overlays();
		platform_driver_unregister(&kmod_i2c_driver);
	}
	return ret;
}

static void __exit kmod_devices_exit(void)
{
	kmod_remove_overlays();
	platform_driver_unregister(&kmod_i2c_driver);
	kmod_existing_nodes("is still in the live device tree after its overlay was removed");
}

module_init(kmod_devices_init);
module_exit(kmod_devices_exit);
MODULE_DESCRIPTION("cargo-kmod test devices: device-tree overlays and a software I2C bus");
MODULE_AUTHOR("cargo-kmod");
MODULE_LICENSE("GPL");
