// Mesh viewer for staff pages: loads the STL files listed in the container's data-meshes
// attribute and shows them with fixed lighting and orbit controls.
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { STLLoader } from "three/examples/jsm/loaders/STLLoader.js";

const BONE_COLOURS = { femur: 0xe8dcc4, tibia: 0xd9c9a8, fibula: 0xc9b68f, patella: 0xf0e6d2 };

export function mountViewer(container) {
  const meshes = JSON.parse(container.dataset.meshes || "[]");
  const renderer = new THREE.WebGLRenderer({ antialias: true });
  renderer.setPixelRatio(window.devicePixelRatio);
  renderer.setSize(container.clientWidth, container.clientHeight);
  container.appendChild(renderer.domElement);

  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0x20242c);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x404040, 1.6));
  const key = new THREE.DirectionalLight(0xffffff, 1.4);
  key.position.set(1, 1, 2);
  scene.add(key);

  const camera = new THREE.PerspectiveCamera(35, container.clientWidth / container.clientHeight, 1, 5000);
  const controls = new OrbitControls(camera, renderer.domElement);
  const group = new THREE.Group();
  scene.add(group);

  const loader = new STLLoader();
  let loaded = 0;
  meshes.forEach(({ bone, url }) => {
    loader.load(url, (geometry) => {
      geometry.computeVertexNormals();
      const material = new THREE.MeshStandardMaterial({ color: BONE_COLOURS[bone] || 0xdddddd, roughness: 0.6 });
      group.add(new THREE.Mesh(geometry, material));
      loaded += 1;
      if (loaded === meshes.length) frame();
    });
  });

  function frame() {
    const box = new THREE.Box3().setFromObject(group);
    const centre = box.getCenter(new THREE.Vector3());
    const size = box.getSize(new THREE.Vector3()).length();
    group.position.sub(centre);
    camera.position.set(0, -size * 1.6, 0);
    camera.up.set(0, 0, 1);
    controls.target.set(0, 0, 0);
    controls.update();
    container.dataset.rendered = "true";
  }

  renderer.setAnimationLoop(() => renderer.render(scene, camera));
}

document.querySelectorAll("[data-mesh-viewer]").forEach(mountViewer);
