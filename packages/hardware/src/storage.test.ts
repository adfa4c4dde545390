import { afterEach, describe, expect, it } from "vitest";
import { detectStorage, parseLsblkPairs, rootDevice } from "./storage.js";
import { identifyDrive } from "./storage-brand.js";
import { byNumber } from "./storage-identity.js";
import { mountinfo } from "./test-fixtures.js";
import { fakeCommandCalls, makeFakeMachine, type FakeMachine } from "./test-host.js";

const machines: FakeMachine[] = [];
afterEach(async () => {
  await Promise.all(machines.splice(0).map((m) => m.cleanup()));
});
async function machine(options: Parameters<typeof makeFakeMachine>[0]): Promise<FakeMachine> {
  const m = await makeFakeMachine(options);
  machines.push(m);
  return m;
}

describe("identifyDrive", () => {
  it("takes the brand from a leading word and keeps the rest as the model", () => {
    expect(identifyDrive("Samsung SSD 990 PRO 2TB")).toEqual({ brand: "Samsung", model: "SSD 990 PRO 2TB" });
    expect(identifyDrive("WDC WDS100T2B0A-00SM50")).toEqual({ brand: "WD", model: "WDS100T2B0A-00SM50" });
    expect(identifyDrive("INTEL SSDPE2KX040T8")).toEqual({ brand: "Intel", model: "SSDPE2KX040T8" });
    expect(identifyDrive("Micron_7450_MTFDKCC1T9TFR")).toEqual({ brand: "Micron", model: "7450_MTFDKCC1T9TFR" });
  });

  it("shortens Samsung OEM part numbers to family and capacity (kitt-protocol.md's MZ1L21T9)", () => {
    expect(identifyDrive("SAMSUNG MZ1L21T9HCLS-00A07")).toEqual({ brand: "Samsung", model: "MZ1L21T9" });
    expect(identifyDrive("MZQL23T8HCLS-00A07")).toEqual({ brand: "Samsung", model: "MZQL23T8" });
  });

  it("recognises bare part numbers of one maker", () => {
    expect(identifyDrive("CT2000P5PSSD8")).toEqual({ brand: "Crucial", model: "CT2000P5PSSD8" });
    expect(identifyDrive("WD_BLACK SN850X 2000GB")).toEqual({ brand: "WD", model: "WD_BLACK SN850X 2000GB" });
  });

  it("falls back to the PCI vendor, else no brand", () => {
    expect(identifyDrive("PC SN740 NVMe WD 1TB", "0x15b7\n")).toEqual({ brand: "WD", model: "PC SN740 NVMe WD 1TB" });
    expect(identifyDrive("Mystery Drive 1TB", "0xabcd")).toEqual({ brand: "", model: "Mystery Drive 1TB" });
  });
});

describe("rootDevice", () => {
  it("finds the source mounted at /", () => {
    expect(rootDevice(mountinfo("/dev/nvme1n1p2"))).toBe("nvme1n1p2");
    expect(rootDevice(mountinfo("overlay", "overlay"))).toBeUndefined();
  });
});

describe("parseLsblkPairs", () => {
  it("reads KEY=\"value\" pairs and unescapes \\xHH", () => {
    expect(parseLsblkPairs('NAME="sda" MODEL="Samsung\\x20SSD 870" VENDOR="ATA     " ROTA="0" TRAN="sata" TYPE="disk"\n')).toEqual([
      { NAME: "sda", MODEL: "Samsung SSD 870", VENDOR: "ATA", ROTA: "0", TRAN: "sata", TYPE: "disk" },
    ]);
  });
});

describe("detectStorage", () => {
  it("reads the NVMe model from sysfs, preferring the controller that holds /", async () => {
    const m = await machine({
      files: {
        "/sys/class/nvme/nvme0/model": "SAMSUNG MZ1L21T9HCLS-00A07              \n",
        "/sys/class/nvme/nvme1/model": "Samsung SSD 990 PRO 2TB                 \n",
        "/proc/self/mountinfo": mountinfo("/dev/nvme1n1p2"),
      },
      commands: { lsblk: { stdout: "" } },
    });
    expect(await detectStorage(m.host)).toEqual({
      brand: "Samsung",
      model: "SSD 990 PRO 2TB",
      rawModel: "Samsung SSD 990 PRO 2TB",
      type: "nvme",
      device: "nvme1",
    });
    expect(await fakeCommandCalls(m.bin, "lsblk")).toEqual([]);
  });

  it("takes the lowest-numbered NVMe controller when / is not on a plain partition", async () => {
    const m = await machine({
      files: {
        "/sys/class/nvme/nvme10/model": "Other 1TB\n",
        "/sys/class/nvme/nvme2/model": "SAMSUNG MZ1L21T9HCLS-00A07\n",
        "/sys/class/nvme/nvme2/device/vendor": "0x144d\n",
        "/proc/self/mountinfo": mountinfo("/dev/md0"),
      },
    });
    expect(await detectStorage(m.host)).toMatchObject({ brand: "Samsung", model: "MZ1L21T9", type: "nvme", device: "nvme2" });
  });

  it("asks lsblk when there is no NVMe, skipping virtual disks", async () => {
    const m = await machine({
      commands: {
        lsblk: {
          stdout: [
            'NAME="zram0" MODEL="" VENDOR="" ROTA="0" TRAN="" TYPE="disk"',
            'NAME="sda" MODEL="Samsung SSD 870 EVO 1TB" VENDOR="ATA     " ROTA="0" TRAN="sata" TYPE="disk"',
            'NAME="sdb" MODEL="ST8000NM000A-2KE101" VENDOR="ATA     " ROTA="1" TRAN="sata" TYPE="disk"',
          ].join("\n"),
        },
      },
    });
    expect(await detectStorage(m.host)).toEqual({
      brand: "Samsung",
      model: "SSD 870 EVO 1TB",
      rawModel: "Samsung SSD 870 EVO 1TB",
      type: "ssd",
      device: "sda",
    });
    expect(await fakeCommandCalls(m.bin, "lsblk")).toEqual(["-d -P -o NAME,MODEL,VENDOR,ROTA,TRAN,TYPE"]);
  });

  it("prefers the SATA disk holding / over an NVMe data drive", async () => {
    const m = await machine({
      files: { "/sys/class/nvme/nvme0/model": "Samsung SSD 990 PRO 2TB\n", "/proc/self/mountinfo": mountinfo("/dev/sdb2") },
      commands: {
        lsblk: {
          stdout: 'NAME="sda" MODEL="Samsung SSD 870" ROTA="0" TRAN="sata" TYPE="disk"\nNAME="sdb" MODEL="ST8000NM000A-2KE101" VENDOR="ATA" ROTA="1" TRAN="sata" TYPE="disk"\n',
        },
      },
    });
    expect(await detectStorage(m.host)).toMatchObject({ brand: "Seagate", model: "ST8000NM000A-2KE101", type: "hdd", device: "sdb" });
  });

  it("knows nothing when neither sysfs nor lsblk helps (virtio disks have no model)", async () => {
    const m = await machine({ commands: { lsblk: { stdout: 'NAME="vda" MODEL="" VENDOR="0x1af4" ROTA="1" TRAN="" TYPE="disk"\n' } } });
    expect(await detectStorage(m.host)).toEqual({ brand: "", model: "", rawModel: "", type: "", device: "" });
  });
});

describe("byNumber (natural order of device names, without an ICU collator)", () => {
  it("orders digit runs as numbers and everything else by code unit", () => {
    const names = ["nvme10n1", "nvme2n1", "nvme1n10", "nvme1n2", "nvme1n1", "nvme01n1", "nvmeXn1", "nvme", "sda", "nvme100n1"];
    expect([...names].sort(byNumber)).toEqual(["nvme", "nvme1n1", "nvme01n1", "nvme1n2", "nvme1n10", "nvme2n1", "nvme10n1", "nvme100n1", "nvmeXn1", "sda"]);
    expect(byNumber("nvme0n1", "nvme0n1")).toBe(0);
    // Longer than a double holds exactly.
    expect(byNumber("d123456789012345678901", "d123456789012345678902")).toBeLessThan(0);
  });
});
