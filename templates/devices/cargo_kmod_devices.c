// SPDX-License-Identifier: GPL-2.0
/*
 * cargo-kmod's test-device helper. Built by cargo-kmod against each kernel tree and loaded
 * by `cargo kmod test`/`run` before the module under test.
 *
 * On load it applies the device-tree overlays listed in the file the `overlay_list`
 * parameter names (paths of compiled `.dtbo` files in the guest's initramfs, one per line)
 * onto the live tree: the firmware's tree on arm64 `-M virt`, the kernel's empty root node
 * on x86_64. The kernel's OF reconfig notifier creates a platform device for every new node
 * under the root. The file `node_list` names lists the nodes the overlays add under the
 * root, one per line: when one already exists, the overlay would change the guest's own
 * node instead of adding a device, so the load fails with -EEXIST before anything is
 * applied. Lists come in files, one entry per line, because a `charp` parameter holds at
 * most 1024 bytes and a node name may hold a comma; neither list has a fixed size.
 *
 * It also drives a software I2C bus: a platform driver for `cargo-kmod,i2c-bus` nodes that
 * registers an I2C adapter with the node as its `of_node`, so the I2C core instantiates
 * every child node as a client at its `reg` address, with its properties. The adapter
 * answers for those addresses only, each backed by a 256-byte register file (preset from
 * the bus node's `cargo-kmod,registers-AA` byte strings): a write sets the register
 * pointer from its first byte and stores the rest, a read returns bytes from the pointer,
 * both auto-incrementing; SMBus transfers are emulated by the I2C core on top of that.
 *
 * With `irq_lines=N` it is also an interrupt controller: an irq domain of N lines for the
 * overlay's node `irq_node` (`interrupt-controller`, one cell), which test devices reach
 * through `interrupts-extended`, so a driver's `platform_get_irq` and `request_irq` work as
 * on hardware. A line fires when a test calls the exported `cargo_kmod_devices_fire(line)`
 * or writes the line to the `fire` parameter
 * (`echo 0 > /sys/module/cargo_kmod_devices/parameters/fire`): its handlers run with
 * interrupts off, as from a real interrupt (`generic_handle_domain_irq_safe`).
 *
 * The file `check_list` names lists the devices to report on, `BUS PATH` per line (bus
 * `platform` or `i2c`, the node's path): reading `/proc/cargo-kmod-devices` gives a line
 * per device, `device PATH BUS NODE NAME DRIVER MODULE` (`-` for what is not there), as
 * the kernel sees it at that moment: whether the node is in the live tree, the device made
 * of it on that bus, the driver bound to it and that driver's module (for a built-in
 * driver, the name its bus gave it, if any: what sysfs shows as its `module` link). What a
 * test boot's check step reads: no process and no walk of sysfs. Names are the kernel's,
 * written as one word each (a byte outside `!`..`~` as `?`).
 *
 * A write to the `remove` parameter (what a test boot does, with no process to start), or
 * else the unload, disposes of the interrupt lines and removes the domain, removes the
 * overlays in reverse order, which removes their devices, and reports a node still present
 * afterwards; the module stays loaded after a `remove`. Like `rmmod`, `remove` is refused
 * (-EBUSY) while a module uses the helper.
 */
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/i2c.h>
#include <linux/irq.h>
#include <linux/irqdesc.h>
#include <linux/irqdomain.h>
#include <linux/kernel_read_file.h>
#include <linux/limits.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/of.h>
#include <linux/of_platform.h>
#include <linux/overflow.h>
#include <linux/platform_device.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

static char *overlay_list;
module_param(overlay_list, charp, 0444);
MODULE_PARM_DESC(overlay_list, "A file listing the compiled overlays (.dtbo) to apply, one per line");

static char *node_list;
module_param(node_list, charp, 0444);
MODULE_PARM_DESC(node_list, "A file listing the nodes the overlays add under the root, one per line");

static char *check_list;
module_param(check_list, charp, 0444);
MODULE_PARM_DESC(check_list, "A file listing the devices /proc/cargo-kmod-devices reports, `BUS PATH` per line");

static char *irq_node;
module_param(irq_node, charp, 0444);
MODULE_PARM_DESC(irq_node, "The overlay's interrupt-controller node the test interrupt lines belong to");

static unsigned int irq_lines;
module_param(irq_lines, uint, 0444);
MODULE_PARM_DESC(irq_lines, "How many test interrupt lines the controller has");

static struct device_node *kmod_irq_np;
static struct irq_domain *kmod_irq_domain;

static int kmod_irq_map(struct irq_domain *d, unsigned int virq, irq_hw_number_t hw)
{
	irq_set_chip_and_handler(virq, &dummy_irq_chip, handle_simple_irq);
	return 0;
}

static const struct irq_domain_ops kmod_irq_ops = {
	.map = kmod_irq_map,
	.xlate = irq_domain_xlate_onecell,
};

/**
 * cargo_kmod_devices_fire - fire test interrupt line @line
 *
 * Runs the handlers requested on the line, with interrupts off. Returns 0, -ENODEV when
 * the run has no test interrupt lines, -EINVAL for a line out of range or one nobody
 * mapped (no driver asked for it).
 */
int cargo_kmod_devices_fire(unsigned int line)
{
	if (!kmod_irq_domain)
		return -ENODEV;
	if (line >= irq_lines)
		return -EINVAL;
	return generic_handle_domain_irq_safe(kmod_irq_domain, line);
}
EXPORT_SYMBOL_GPL(cargo_kmod_devices_fire);

static int kmod_fire_set(const char *val, const struct kernel_param *kp)
{
	unsigned int line;
	int ret = kstrtouint(val, 0, &line);

	if (ret)
		return ret;
	return cargo_kmod_devices_fire(line);
}

static const struct kernel_param_ops kmod_fire_ops = {
	.set = kmod_fire_set,
};
module_param_cb(fire, &kmod_fire_ops, NULL, 0200);
MODULE_PARM_DESC(fire, "Write a line number to fire that test interrupt line");

static int kmod_irq_setup(void)
{
	if (!irq_lines)
		return 0;
	kmod_irq_np = of_find_node_by_path(irq_node ? irq_node : "");
	if (!kmod_irq_np) {
		pr_err("cargo-kmod: interrupt controller node %s is not in the live device tree\n",
		       irq_node ? irq_node : "(none)");
		return -ENOENT;
	}
	kmod_irq_domain = irq_domain_create_linear(of_fwnode_handle(kmod_irq_np), irq_lines,
						   &kmod_irq_ops, NULL);
	if (!kmod_irq_domain) {
		of_node_put(kmod_irq_np);
		kmod_irq_np = NULL;
		return -ENOMEM;
	}
	return 0;
}

static void kmod_irq_teardown(void)
{
	unsigned int line, virq;

	if (!kmod_irq_domain)
		return;
	for (line = 0; line < irq_lines; line++) {
		virq = irq_find_mapping(kmod_irq_domain, line);
		if (virq)
			irq_dispose_mapping(virq);
	}
	irq_domain_remove(kmod_irq_domain);
	kmod_irq_domain = NULL;
	of_node_put(kmod_irq_np);
	kmod_irq_np = NULL;
}

/* The text of the three lists, NUL-terminated; read once at load. */
static char *overlays;
static char *nodes;
static char *checks;
static struct proc_dir_entry *kmod_proc;
static int *ovcs_ids;
static int applied;

struct kmod_i2c_client {
	u16 addr;
	u8 pointer;
	u8 regs[256];
};

struct kmod_i2c_bus {
	struct i2c_adapter adap;
	struct mutex lock;	/* one transfer at a time: the register pointers */
	int count;
	struct kmod_i2c_client clients[];	/* one per child node with a `reg` */
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
	int n_clients = 0;
	u32 addr;
	int len;

	/* As many register files as there are clients: no fixed limit. */
	for_each_available_child_of_node(np, child)
		if (!of_property_read_u32(child, "reg", &addr))
			n_clients++;
	bus = devm_kzalloc(&pdev->dev, struct_size(bus, clients, n_clients), GFP_KERNEL);
	if (!bus)
		return -ENOMEM;
	mutex_init(&bus->lock);
	for_each_available_child_of_node(np, child) {
		if (of_property_read_u32(child, "reg", &addr))
			continue;
		if (bus->count == n_clients) {	/* a node gained a `reg` meanwhile */
			of_node_put(child);
			break;
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

/* The file `path` as a NUL-terminated string (NULL and an empty list for no path). */
static int kmod_read_list(const char *path, char **text)
{
	void *buf = NULL;
	size_t size = 0;
	ssize_t n;

	*text = NULL;
	if (!path || !*path)
		return 0;
	n = kernel_read_file_from_path(path, 0, &buf, INT_MAX, &size, READING_UNKNOWN);
	if (n < 0) {
		pr_err("cargo-kmod: cannot read list %s: error %zd\n", path, n);
		return n;
	}
	*text = kmemdup_nul(buf, n, GFP_KERNEL);
	vfree(buf);
	return *text ? 0 : -ENOMEM;
}

/* How many lines of `text`: an upper bound of its entries. */
static int kmod_count_lines(const char *text)
{
	int n = 1;

	for (; text && *text; text++)
		if (*text == '\n')
			n++;
	return n;
}

/* The next non-empty line of the list at `*cursor`, split off in place; NULL at its end. */
static char *kmod_next_line(char **cursor)
{
	char *line;

	while ((line = strsep(cursor, "\n")) != NULL)
		if (*line)
			return line;
	return NULL;
}

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
	while ((path = kmod_next_line(&cursor)) != NULL) {
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

static void kmod_free_lists(void)
{
	kfree(ovcs_ids);
	kfree(overlays);
	kfree(nodes);
	ovcs_ids = NULL;
	overlays = NULL;
	nodes = NULL;
}

/* Everything init read, for its failure paths: the check list lives until the unload. */
static void kmod_free_all(void)
{
	kmod_free_lists();
	kfree(checks);
	checks = NULL;
}

/* One word of a report line: the kernel's name, `-` for none, a byte outside `!`..`~` as `?`. */
static void kmod_seq_word(struct seq_file *m, const char *s)
{
	seq_putc(m, ' ');
	if (!s || !*s) {
		seq_putc(m, '-');
		return;
	}
	for (; *s; s++)
		seq_putc(m, *s > ' ' && *s < 0x7f ? *s : '?');
}

/* The device `bus` (`platform` or `i2c`) made of `np`, with a reference; NULL for none. */
static struct device *kmod_device_of(const char *bus, struct device_node *np)
{
	struct platform_device *pdev;
	struct i2c_client *client;

	if (!strcmp(bus, "platform")) {
		pdev = of_find_device_by_node(np);
		return pdev ? &pdev->dev : NULL;
	}
	if (!strcmp(bus, "i2c")) {
		client = of_find_i2c_device_by_node(np);
		return client ? &client->dev : NULL;
	}
	return NULL;
}

/* The device lock, if it can be had within about a second. */
static bool kmod_device_trylock(struct device *dev)
{
	int i;

	for (i = 0; i < 1000; i++) {
		if (device_trylock(dev))
			return true;
		usleep_range(1000, 2000);
	}
	return false;
}

/*
 * `device PATH BUS NODE NAME DRIVER MODULE` for every entry of `check_list`. A test boot
 * reads it between the modules' loads and unloads, never while `remove` runs: a reader
 * holding a node then would make the overlay's removal report that node as leaked.
 */
static int kmod_devices_show(struct seq_file *m, void *v)
{
	struct device_driver *drv;
	struct device_node *np;
	struct device *dev;
	char *list, *cursor, *line, *bus;
	bool locked;

	if (!checks)
		return 0;
	list = kstrdup(checks, GFP_KERNEL);
	if (!list)
		return -ENOMEM;
	cursor = list;
	while ((line = kmod_next_line(&cursor)) != NULL) {
		bus = strsep(&line, " ");
		if (!*bus || !line || !*line)
			continue;
		np = of_find_node_by_path(line);
		dev = np ? kmod_device_of(bus, np) : NULL;
		seq_puts(m, "device");
		kmod_seq_word(m, line);
		kmod_seq_word(m, bus);
		kmod_seq_word(m, np ? "1" : NULL);
		kmod_seq_word(m, dev ? dev_name(dev) : NULL);
		if (dev) {
			/*
			 * Not device_lock(): a probe stuck in a worker would hang the guest's
			 * shell (PID 1) here. A second of tries (guest time), then the driver
			 * as it is.
			 */
			locked = kmod_device_trylock(dev);
			drv = READ_ONCE(dev->driver);
			kmod_seq_word(m, drv ? drv->name : NULL);
			/* The module's name, or a built-in driver's KBUILD_MODNAME. */
			if (drv && drv->owner)
				kmod_seq_word(m, module_name(drv->owner));
			else
				kmod_seq_word(m, drv ? drv->mod_name : NULL);
			if (locked)
				device_unlock(dev);
			put_device(dev);
		} else {
			kmod_seq_word(m, NULL);
			kmod_seq_word(m, NULL);
		}
		seq_putc(m, '\n');
		of_node_put(np);
	}
	kfree(list);
	return 0;
}

static int __init kmod_devices_init(void)
{
	char *cursor, *path;
	int ret;

	ret = kmod_read_list(node_list, &nodes);
	if (!ret)
		ret = kmod_read_list(overlay_list, &overlays);
	if (!ret)
		ret = kmod_read_list(check_list, &checks);
	if (!ret) {
		ovcs_ids = kcalloc(kmod_count_lines(overlays), sizeof(*ovcs_ids), GFP_KERNEL);
		if (!ovcs_ids)
			ret = -ENOMEM;
	}
	if (ret) {
		kmod_free_all();
		return ret;
	}
	ret = kmod_existing_nodes("already exists in the live device tree");
	if (ret) {
		kmod_free_all();
		return ret < 0 ? ret : -EEXIST;
	}
	ret = platform_driver_register(&kmod_i2c_driver);
	if (ret) {
		kmod_free_all();
		return ret;
	}
	if (checks) {
		kmod_proc = proc_create_single("cargo-kmod-devices", 0444, NULL, kmod_devices_show);
		if (!kmod_proc) {
			platform_driver_unregister(&kmod_i2c_driver);
			kmod_free_all();
			return -ENOMEM;
		}
	}
	if (!overlays || !*overlays)
		return 0;
	/* `overlays` is not needed once applied: split it in place. */
	cursor = overlays;
	while ((path = kmod_next_line(&cursor)) != NULL) {
		ret = kmod_apply(path);
		if (ret)
			break;
	}
	/* Drivers load after this module: the lines exist before anything asks for them. */
	if (!ret)
		ret = kmod_irq_setup();
	if (ret) {
		kmod_remove_overlays();
		proc_remove(kmod_proc);
		platform_driver_unregister(&kmod_i2c_driver);
		kmod_free_all();
	}
	return ret;
}

/*
 * Remove the devices: the test interrupt lines, then the overlays, then check that their
 * nodes are gone. Once only (`removed`): after a write to `remove`, unloading the module
 * has nothing left to remove.
 */
static bool removed;
static DEFINE_MUTEX(kmod_remove_lock);

static void kmod_remove_devices(void)
{
	mutex_lock(&kmod_remove_lock);
	if (!removed) {
		removed = true;
		kmod_irq_teardown();
		kmod_remove_overlays();
		kmod_existing_nodes("is still in the live device tree after its overlay was removed");
		kmod_free_lists();
	}
	mutex_unlock(&kmod_remove_lock);
}

/* A write to `remove` removes the devices without a process to unload the module. */
static int kmod_remove_set(const char *val, const struct kernel_param *kp)
{
	/* Not before the module's init ran (`remove=` given to insmod): nothing is there. */
	if (!READ_ONCE(ovcs_ids) && !READ_ONCE(removed))
		return -ENODEV;
	/* Not while a module uses it (fires its lines), as rmmod would refuse. */
	if (module_refcount(THIS_MODULE) > 0)
		return -EBUSY;
	kmod_remove_devices();
	return 0;
}

static const struct kernel_param_ops kmod_remove_ops = {
	.set = kmod_remove_set,
};
module_param_cb(remove, &kmod_remove_ops, NULL, 0200);
MODULE_PARM_DESC(remove, "Write anything to remove the devices (as unloading the module does)");

static void __exit kmod_devices_exit(void)
{
	proc_remove(kmod_proc);	/* waits for readers */
	kfree(checks);
	kmod_remove_devices();
	platform_driver_unregister(&kmod_i2c_driver);
}

module_init(kmod_devices_init);
module_exit(kmod_devices_exit);
MODULE_DESCRIPTION("cargo-kmod test devices: device-tree overlays, a software I2C bus and test interrupt lines");
MODULE_AUTHOR("cargo-kmod");
MODULE_LICENSE("GPL");
