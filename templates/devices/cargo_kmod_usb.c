// SPDX-License-Identifier: GPL-2.0
/*
 * cargo-kmod's USB gadget function for USB test devices whose interface is not
 * vendor-specific: one interface, without endpoints, with the class, subclass and protocol
 * written to its configfs attributes (`functions/kmod_interface.N/{class,subclass,protocol}`),
 * so the host side enumerates an interface of any class a driver's table names. The kernel's
 * own functions each have one fixed class (SourceSink: 0xff, HID: 0x03, ...).
 */

#include <linux/err.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/usb/composite.h>

struct kmod_if_opts {
	struct usb_function_instance func_inst;
	struct mutex lock;	/* guards refcnt and the codes */
	int refcnt;		/* functions made from these options: then they are fixed */
	u8 class;
	u8 subclass;
	u8 protocol;
};

struct kmod_if {
	struct usb_function function;
	struct usb_interface_descriptor intf;
	struct usb_descriptor_header *descs[2];
};

static struct kmod_if_opts *to_opts(struct config_item *item)
{
	return container_of(to_config_group(item), struct kmod_if_opts, func_inst.group);
}

static int kmod_if_bind(struct usb_configuration *c, struct usb_function *f)
{
	struct kmod_if *k = container_of(f, struct kmod_if, function);
	int id = usb_interface_id(c, f);

	if (id < 0)
		return id;
	k->intf.bInterfaceNumber = id;
	k->descs[0] = (struct usb_descriptor_header *)&k->intf;
	k->descs[1] = NULL;
	/* The same interface at every speed. */
	return usb_assign_descriptors(f, k->descs, k->descs, k->descs, k->descs);
}

/* The gadget unbound (its UDC cleared): a later bind assigns the descriptors again. */
static void kmod_if_unbind(struct usb_configuration *c, struct usb_function *f)
{
	usb_free_all_descriptors(f);
}

static int kmod_if_set_alt(struct usb_function *f, unsigned int intf, unsigned int alt)
{
	return alt ? -EINVAL : 0;
}

static void kmod_if_disable(struct usb_function *f)
{
}

static void kmod_if_free(struct usb_function *f)
{
	struct kmod_if_opts *opts = container_of(f->fi, struct kmod_if_opts, func_inst);

	mutex_lock(&opts->lock);
	opts->refcnt--;
	mutex_unlock(&opts->lock);
	usb_free_all_descriptors(f);
	kfree(container_of(f, struct kmod_if, function));
}

static struct usb_function *kmod_if_alloc(struct usb_function_instance *fi)
{
	struct kmod_if_opts *opts = container_of(fi, struct kmod_if_opts, func_inst);
	struct kmod_if *k = kzalloc(sizeof(*k), GFP_KERNEL);

	if (!k)
		return ERR_PTR(-ENOMEM);
	k->intf.bLength = USB_DT_INTERFACE_SIZE;
	k->intf.bDescriptorType = USB_DT_INTERFACE;
	k->intf.bNumEndpoints = 0;
	mutex_lock(&opts->lock);
	opts->refcnt++;
	k->intf.bInterfaceClass = opts->class;
	k->intf.bInterfaceSubClass = opts->subclass;
	k->intf.bInterfaceProtocol = opts->protocol;
	mutex_unlock(&opts->lock);
	k->function.name = "kmod_interface";
	k->function.bind = kmod_if_bind;
	k->function.unbind = kmod_if_unbind;
	k->function.set_alt = kmod_if_set_alt;
	k->function.disable = kmod_if_disable;
	k->function.free_func = kmod_if_free;
	return &k->function;
}

static ssize_t kmod_if_show(struct config_item *item, char *page, u8 *field)
{
	struct kmod_if_opts *opts = to_opts(item);
	ssize_t n;

	mutex_lock(&opts->lock);
	n = sprintf(page, "0x%02x\n", *field);
	mutex_unlock(&opts->lock);
	return n;
}

static ssize_t kmod_if_store(struct config_item *item, const char *page, size_t len, u8 *field)
{
	struct kmod_if_opts *opts = to_opts(item);
	u8 value;
	int ret;

	mutex_lock(&opts->lock);
	if (opts->refcnt) {
		ret = -EBUSY;
	} else {
		ret = kstrtou8(page, 0, &value);
		if (!ret)
			*field = value;
	}
	mutex_unlock(&opts->lock);
	return ret ? ret : len;
}

#define KMOD_IF_ATTR(field)								\
static ssize_t kmod_if_##field##_show(struct config_item *item, char *page)		\
{											\
	return kmod_if_show(item, page, &to_opts(item)->field);				\
}											\
static ssize_t kmod_if_##field##_store(struct config_item *item, const char *page,	\
				       size_t len)					\
{											\
	return kmod_if_store(item, page, len, &to_opts(item)->field);			\
}											\
CONFIGFS_ATTR(kmod_if_, field)

KMOD_IF_ATTR(class);
KMOD_IF_ATTR(subclass);
KMOD_IF_ATTR(protocol);

static struct configfs_attribute *kmod_if_attrs[] = {
	&kmod_if_attr_class,
	&kmod_if_attr_subclass,
	&kmod_if_attr_protocol,
	NULL,
};

static void kmod_if_attr_release(struct config_item *item)
{
	usb_put_function_instance(&to_opts(item)->func_inst);
}

static const struct configfs_item_operations kmod_if_item_ops = {
	.release = kmod_if_attr_release,
};

static const struct config_item_type kmod_if_type = {
	.ct_item_ops = &kmod_if_item_ops,
	.ct_attrs = kmod_if_attrs,
	.ct_owner = THIS_MODULE,
};

static void kmod_if_free_instance(struct usb_function_instance *fi)
{
	kfree(container_of(fi, struct kmod_if_opts, func_inst));
}

static struct usb_function_instance *kmod_if_alloc_instance(void)
{
	struct kmod_if_opts *opts = kzalloc(sizeof(*opts), GFP_KERNEL);

	if (!opts)
		return ERR_PTR(-ENOMEM);
	mutex_init(&opts->lock);
	opts->func_inst.free_func_inst = kmod_if_free_instance;
	opts->class = USB_CLASS_VENDOR_SPEC;
	config_group_init_type_name(&opts->func_inst.group, "", &kmod_if_type);
	return &opts->func_inst;
}

DECLARE_USB_FUNCTION_INIT(kmod_interface, kmod_if_alloc_instance, kmod_if_alloc);

MODULE_DESCRIPTION("cargo-kmod test devices: a USB gadget function with one interface of any class");
MODULE_AUTHOR("cargo-kmod");
MODULE_LICENSE("GPL");
